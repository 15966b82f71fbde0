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

import msgpack
import zmq

from bus import audio, models, sockets
from bus import config as configuration
from bus import log as logging
from bus.frames import EndOfStream, Frame, Generation, Start, Typed
from bus.peer import Peer
from bus.supervise import Supervisor


class CliError(Exception):
    pass


@dataclass
class Replay:
    """What a replay has seen so far: the typed document and one trace row per utterance."""

    text: str = ""
    rows: dict = field(default_factory=dict)  # utterance id -> trace row, in typing order
    finished: bool = False

    def on_typed(self, frame: Frame) -> None:
        typed: Typed = frame.body
        self.text = apply_keystrokes(self.text, typed.backspaces, typed.text)
        row = self.rows.setdefault(frame.utt, {"utt": frame.utt, "text": "", "backspaces": 0, "errors": []})
        row["text"] += typed.text
        row["backspaces"] += typed.backspaces
        row["typed_by"] = typed.by
        if typed.error:
            row["errors"].append(typed.error)
        first_key = row.get("first_key_ns") or frame.marks.get("first_key")
        row.update(trace_times(frame.marks), first_key_ns=first_key)
        row.update(trace_spans(row))

    def on_generation(self, frame: Frame) -> None:
        report: Generation = frame.body
        row = self.rows.setdefault(frame.utt, {"utt": frame.utt, "text": "", "backspaces": 0, "errors": []})
        row.update(
            mode=report.mode,
            outcome=report.outcome,
            llm_stage=frame.src,
            prompt_tokens=report.prompt_tokens,
            ttft_ms=report.ttft_ms,
            first_typed_ms=report.first_typed_ms,
            tokens_per_s=report.tokens_per_s,
            llm_total_ms=report.total_ms,
        )

    def on_end(self, frame: Frame) -> None:
        self.finished = True


def apply_keystrokes(document: str, backspaces: int, text: str) -> str:
    kept = document[: max(0, len(document) - backspaces)]
    return kept + text


MARKS = {"speech_end": "speech_end_ns", "vad": "vad_ns", "asr": "asr_final_ns", "router": "router_ns",
         "llm_first_token": "llm_first_token_ns", "first_key": "first_key_ns", "last_key": "last_key_ns"}
SPANS = {
    "speech_end_to_vad_ms": ("speech_end_ns", "vad_ns"),
    "speech_end_to_asr_ms": ("speech_end_ns", "asr_final_ns"),
    "asr_ms": ("vad_ns", "asr_final_ns"),
    "speech_end_to_first_key_ms": ("speech_end_ns", "first_key_ns"),
    "typing_ms": ("first_key_ns", "last_key_ns"),
}


def trace_times(marks: dict) -> dict:
    return {column: marks[name] for name, column in MARKS.items() if name in marks}


def trace_spans(row: dict) -> dict:
    return {
        span: round((row[end] - row[start]) / 1e6, 1)
        for span, (start, end) in SPANS.items()
        if row.get(start) and row.get(end)
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
    peer = Peer("cli", config, list(configuration.STAGES), [Typed.TOPIC, Generation.TOPIC], log)
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
            elif frame is not None and isinstance(frame.body, Generation):
                state.on_generation(frame)
                last_progress = now
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
                for row in state.rows.values():
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


def set_mode(args) -> int:
    config = configuration.load(args.config, args.set)
    run_dir = sockets.run_dir(config)
    sockets.check_private_dir(run_dir)
    reply = control(config, "router", "mode", {"mode": args.mode})
    print(f"voxkey: {reply}", file=sys.stderr)
    return 0


def control(config: dict, stage: str, command: str, args: dict, timeout_s: float = 3.0) -> str:
    """Send one command to a running stage's control socket and return its answer."""
    context = zmq.Context.instance()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(sockets.control_endpoint(config, stage))
        socket.send(msgpack.packb({"command": command, "args": args}))
        if not socket.poll(int(timeout_s * 1000)):
            raise CliError(f"stage {stage} did not answer in {timeout_s:.0f} s: is voxkey running (voxkey up)?")
        reply = msgpack.unpackb(socket.recv(), raw=False)
    finally:
        socket.close()
    if not reply.get("ok"):
        raise CliError(f"{stage}: {reply.get('message')}")
    return reply.get("message", "")


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

    mode = commands.add_parser("mode", help="set the sticky mode of a running voxkey")
    mode.add_argument("mode", choices=["dictate", "clarify", "chat", "converse"])
    common(mode)
    mode.set_defaults(run=set_mode)

    models.add_cli(commands)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        sys.exit(args.run(args))
    except (CliError, configuration.ConfigError, models.ModelError) as error:
        print(f"voxkey: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
