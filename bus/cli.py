"""The `voxkey` command.

    voxkey up [--config FILE] [--set section.key=value ...]
    voxkey replay PATH [--realtime] [--sink stdout|file:PATH|xdotool] [--trace PATH]

Both run every stage as its own process under supervisord (supervisord.conf). `replay`
feeds a recording in, waits until everything in it has been typed, stops the stages,
and prints exactly the text that was typed; logs stay in the run directory.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bus import audio, sockets
from bus import config as configuration
from bus import log as logging
from bus.frames import EndOfStream, Frame, Start, Typed
from bus.peer import Peer
from bus.supervise import Supervisor


class CliError(Exception):
    pass


@dataclass
class Replay:
    """What a replay has seen so far: the typed document and one trace row per utterance."""

    text: str = ""
    rows: list = field(default_factory=list)
    finished: bool = False

    def on_typed(self, frame: Frame) -> None:
        typed: Typed = frame.body
        self.text = apply_keystrokes(self.text, typed.backspaces, typed.text)
        self.rows.append(trace_row(frame))

    def on_end(self, frame: Frame) -> None:
        self.finished = True


def apply_keystrokes(document: str, backspaces: int, text: str) -> str:
    kept = document[: max(0, len(document) - backspaces)]
    return kept + text


def trace_row(frame: Frame) -> dict:
    marks = frame.marks

    def ms(start: str, end: str):
        if start in marks and end in marks:
            return round((marks[end] - marks[start]) / 1e6, 1)
        return None

    return {
        "utt": frame.utt,
        "text": frame.body.text,
        "backspaces": frame.body.backspaces,
        "error": frame.body.error,
        "speech_end_ns": marks.get("speech_end"),
        "vad_ns": marks.get("vad"),
        "asr_final_ns": marks.get("asr"),
        "router_ns": marks.get("router"),
        "first_key_ns": marks.get("first_key"),
        "last_key_ns": marks.get("last_key"),
        "speech_end_to_vad_ms": ms("speech_end", "vad"),
        "speech_end_to_asr_ms": ms("speech_end", "asr"),
        "asr_ms": ms("vad", "asr"),
        "speech_end_to_first_key_ms": ms("speech_end", "first_key"),
        "typing_ms": ms("first_key", "last_key"),
    }


def prepare_run(config: dict, run_dir: Path) -> Path:
    config["bus"]["run_dir"] = str(run_dir)
    path = run_dir / "run.toml"
    path.write_text(configuration.dumps(config))
    return path


def replay(args) -> int:
    try:
        audio.probe(args.path)
    except audio.UnreadableAudio as error:
        raise CliError(str(error)) from None
    config = configuration.load(args.config, args.set)
    capture = config["stages"]["capture"]
    capture.update(source=str(Path(args.path).resolve()), realtime=args.realtime, wait_for_start=True, listen=["cli"])
    if args.sink:
        config["stages"]["keys"]["sink"] = args.sink
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-"))  # mode 0700
    stall_timeout = float(config["cli"]["stall_timeout_s"])
    log = logging.setup("cli")
    supervisor = Supervisor(run_dir, prepare_run(config, run_dir))
    peer = Peer("cli", config, list(configuration.STAGES), [Typed.TOPIC], log)
    state = Replay()
    try:
        supervisor.start()
        last_progress = time.monotonic()
        next_check = 0.0
        while not state.finished:
            frame = peer.receive(100)
            now = time.monotonic()
            if frame is not None and frame.src == "keys" and isinstance(frame.body, Typed):
                state.on_typed(frame)
                last_progress = now
            elif frame is not None and frame.src == "keys" and isinstance(frame.body, EndOfStream):
                state.on_end(frame)
            elif frame is not None and frame.topic != "heartbeat":
                last_progress = now
            if now >= next_check:
                next_check = now + 0.5
                peer.heartbeat(True, "replay")  # capture counts as ready once it hears us
                _check_health(supervisor, peer)
                if _all_ready(peer) and _capture_state(peer) == "waiting":
                    peer.publish(Start())
                if _capture_state(peer) == "streaming":
                    last_progress = now
            if now - last_progress > stall_timeout:
                raise CliError(f"replay made no progress for {stall_timeout:.0f} s; logs are in {run_dir}")
    except CliError:
        args.keep = True
        raise
    finally:
        supervisor.stop()
        peer.close()
        if args.trace:
            with open(args.trace, "w") as trace:
                for row in state.rows:
                    trace.write(json.dumps(row) + "\n")
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"voxkey: logs kept in {run_dir}", file=sys.stderr)
    sys.stdout.write(state.text)
    if state.text and sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


def _all_ready(peer: Peer) -> bool:
    return all(beat is not None and beat.ready for beat in peer.heard.values())


def _capture_state(peer: Peer) -> str:
    beat = peer.heard.get("capture")
    return beat.state if beat is not None else ""


def _check_health(supervisor: Supervisor, peer: Peer) -> None:
    if not supervisor.alive():
        raise CliError(f"supervisord exited; see {supervisor.run_dir / 'supervisord.out'}")
    failed = supervisor.failed()
    if failed:
        name, reason = next(iter(failed.items()))
        raise CliError(f"stage {name} cannot start: {reason}")


def up(args) -> int:
    config = configuration.load(args.config, args.set)
    run_dir = sockets.make_private_dir(sockets.run_dir(config))
    supervisor = Supervisor(run_dir, prepare_run(config, run_dir))
    supervisor.start()
    print(f"voxkey: listening; logs in {run_dir}; Ctrl-C stops", file=sys.stderr)
    try:
        while supervisor.alive():
            failed = supervisor.failed()
            if failed:
                name, reason = next(iter(failed.items()))
                raise CliError(f"stage {name} cannot start: {reason}")
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="voxkey", description="A fully local, voice-first keyboard.")
    commands = root.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("--config", help="a TOML file laid over the defaults")
        sub.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")

    live = commands.add_parser("up", help="listen to the microphone and type")
    common(live)
    live.set_defaults(run=up)

    play = commands.add_parser("replay", help="type what a recording says")
    play.add_argument("path")
    play.add_argument("--realtime", action="store_true", help="feed audio at the speed it was spoken")
    play.add_argument("--sink", help="stdout (default), file:PATH or xdotool")
    play.add_argument("--trace", help="write one JSON line of timings per utterance here")
    play.add_argument("--keep", action="store_true", help="keep the run directory (sockets, logs)")
    common(play)
    play.set_defaults(run=replay)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        sys.exit(args.run(args))
    except (CliError, configuration.ConfigError) as error:
        print(f"voxkey: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
