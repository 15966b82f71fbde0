"""Replaying a recording through the whole pipeline: every stage a process under
supervisord, the recording fed in once all are ready, and a trace of what happened to
each utterance. Used by `voxkey replay` and by the bench."""

import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bus import config as configuration
from bus import log as logging
from bus import placement, wiring
from bus.asking import ask
from bus.control import StageStatus
from bus.frames import Frame, Generation, Heartbeat, Speech, Start, Typed
from bus.peer import Peer
from bus.progress import CaptureProgress, VadProgress, progress_of
from bus.records import typed
from bus.wiring import CLI, MODEL_STAGES
from stages.capture import audio
from voxkey import status
from voxkey.supervise import Health, Supervisor


class ReplayError(Exception):
    pass


@dataclass
class Replay:
    """What a replay has seen so far: the typed document and one trace row per utterance."""

    run_dir: Path | None = None
    text: str = ""
    rows: dict = field(default_factory=dict)  # utterance id -> trace row, in typing order
    utterances: int = -1  # how many the recording held, once vad has heard all of it
    stream_started_ns: int = 0  # when the recording's sample 0 was fed (capture says)
    counters: dict = field(default_factory=dict)  # stage -> its counters once all was typed

    def on_typed(self, frame: Frame) -> None:
        typed: Typed = frame.body
        row = self._row(frame.utt)
        if typed.backspaces and not row["backspaces"]:
            # keys erases once per utterance, before its text; a repeated
            # acknowledgement says how many again, for whoever missed the first.
            self.text = apply_keystrokes(self.text, typed.backspaces, "")
            row["backspaces"] = typed.backspaces
        text = typed.unseen(row["text"])
        self.text += text
        row["text"] += text
        row["typed_by"] = typed.by
        row["final"] = row.get("final", False) or typed.final
        if typed.error:
            row["errors"].append(typed.error)
        first_key = row.get("first_key_ns") or frame.marks.get("first_key")
        row.update(trace_times(frame.marks), first_key_ns=first_key)
        row.update(trace_spans(row))

    def on_generation(self, frame: Frame) -> None:
        report: Generation = frame.body
        self._row(frame.utt).update(
            mode=report.mode,
            outcome=report.outcome,
            llm_stage=frame.src,
            prompt_tokens=report.prompt_tokens,
            generated_tokens=report.tokens,
            outcome_detail=report.detail,
            ttft_ms=report.ttft_ms,
            first_typed_ms=report.first_typed_ms,
            tokens_per_s=report.tokens_per_s,
            llm_total_ms=report.total_ms,
        )

    def on_speech(self, frame: Frame) -> None:
        """Where vad heard the utterance's speech begin and end, in samples of the stream."""
        speech: Speech = frame.body
        self._row(frame.utt).update(speech_start_sample=speech.onset_sample, speech_end_sample=speech.end_sample)

    def _row(self, utt: str) -> dict:
        row = self.rows.setdefault(utt, {"utt": utt, "text": "", "backspaces": 0, "errors": []})
        if self.stream_started_ns:
            row["stream_started_ns"] = self.stream_started_ns
        return row

    def on_frame(self, frame: Frame) -> None:
        if isinstance(frame.body, Typed):
            self.on_typed(frame)
        elif isinstance(frame.body, Generation):
            self.on_generation(frame)
        elif isinstance(frame.body, Speech):
            self.on_speech(frame)
        elif isinstance(frame.body, Heartbeat):
            self.on_progress(progress_of(frame.src, frame.body.progress))

    def on_progress(self, said) -> None:
        if isinstance(said, VadProgress) and said.ended:
            self.utterances = said.utterances
        elif isinstance(said, CaptureProgress):
            self.stream_started_ns = said.stream_started_ns

    @property
    def finished(self) -> bool:
        """Accounted for: vad has heard the whole recording, every utterance it cut has
        its final keystroke, and every answer a model typed has its report (sent before
        the answer's final piece, so it is on its way)."""
        rows = self.rows.values()
        final = sum(bool(row.get("final")) for row in rows)
        reported = all(row.get("typed_by") not in MODEL_STAGES.values() or "outcome" in row for row in rows)
        return self.utterances >= 0 and final >= self.utterances and reported


def apply_keystrokes(document: str, backspaces: int, text: str) -> str:
    kept = document[: max(0, len(document) - backspaces)]
    return kept + text


MARKS = {
    "speech_end": "speech_end_ns",
    "vad": "vad_ns",
    "recognised": "recognised_ns",
    "asr": "asr_final_ns",
    "router": "router_ns",
    "llm_first_token": "llm_first_token_ns",
    "first_key": "first_key_ns",
    "last_key": "last_key_ns",
}
SPANS = {
    "speech_end_to_vad_ms": ("speech_end_ns", "vad_ns"),
    "speech_end_to_asr_ms": ("speech_end_ns", "asr_final_ns"),
    "asr_ms": ("vad_ns", "asr_final_ns"),
    "speech_end_to_first_key_ms": ("speech_end_ns", "first_key_ns"),
    "typing_ms": ("first_key_ns", "last_key_ns"),
    "speech_end_to_last_key_ms": ("speech_end_ns", "last_key_ns"),
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
    config["bus"]["run_id"] = uuid.uuid4().hex[:12]
    path = run_dir / "run.toml"
    path.write_text(configuration.dumps(config))
    return path


def run(
    config: dict,
    recording: str,
    realtime: bool = False,
    keep: bool = False,
    observe=None,
    progress: TextIO | None = sys.stderr,
) -> Replay:
    """Replay one recording through every stage under supervisord; returns what was typed,
    once every utterance of it is accounted for (`Replay.finished`).

    `progress` is told, a line each, how loading goes (15-20 s of it on a Pi).
    `observe(supervisor, frame)` is called for every frame the replay hears and about
    twice a second with frame None (the bench samples the stage processes there).
    The run directory (sockets, logs) is removed afterwards, also when the replay fails,
    unless `keep`."""
    try:
        audio.probe(recording)
    except audio.UnreadableAudio as error:
        raise ReplayError(str(error)) from None
    capture = config["stages"]["capture"]
    capture.update(
        source=str(Path(recording).resolve()),
        realtime=realtime,
        wait_for_start=True,
        listen=[*capture.get("listen", []), CLI],  # capture waits for this replay's `start`
    )
    # keys types nothing before this replay hears it: no report of what was typed is lost
    config["stages"]["keys"]["audience"] = [*config["stages"]["keys"].get("audience", []), CLI]
    # A recording is typed whole, however late: nobody moved the focus since it was
    # said, and fed faster than spoken its end-of-speech times are virtual.
    config["stages"]["keys"]["max_age_s"] = 0.0
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-"))  # mode 0700
    stall_timeout = float(config["cli"]["stall_timeout_s"])
    state = Replay(run_dir=run_dir)
    loading = status.Loading(ready_message="ready: replaying")
    supervisor = peer = None
    try:
        here = placement.stages_here(config)  # another host runs the rest ([placement], `voxkey serve` there)
        supervisor = Supervisor(run_dir, prepare_run(config, run_dir), here)
        health = Health(supervisor)  # before supervisord starts: every crash of this run counts
        peer = Peer(
            "cli",
            config,
            list(wiring.STAGES),
            [Typed.TOPIC, Generation.TOPIC, Speech.TOPIC],
            logging.setup("cli"),
        )
        supervisor.start()
        last_progress = time.monotonic()
        next_check = 0.0
        while not state.finished:
            frame = peer.receive(100)
            now = time.monotonic()
            if frame is not None:
                state.on_frame(frame)
                if frame.topic != "heartbeat":
                    last_progress = now
                elif progress is not None:
                    for event in loading.on_heartbeat(frame.src, frame.body):
                        print(f"voxkey: {event.message}", file=progress, flush=True)
            if observe is not None and frame is not None:
                observe(supervisor, frame)
            if now >= next_check:
                next_check = now + 0.5
                if observe is not None:
                    observe(supervisor, None)
                peer.heartbeat(True, "replay")  # capture counts as ready once it hears us
                for problem in health.problems(now):
                    raise ReplayError(problem + kept_logs_hint(keep, run_dir))
                if _all_ready(peer) and _capture_state(peer) == "waiting":
                    peer.publish(Start())
                if _capture_state(peer) == "streaming":
                    last_progress = now
            if now - last_progress > stall_timeout:
                waiting = [name for name, beat in peer.heard.items() if beat is None or not beat.ready]
                why = f" (not ready: {', '.join(waiting)})" if waiting else ""
                raise ReplayError(
                    f"replay made no progress for {stall_timeout:.0f} s{why}" + kept_logs_hint(keep, run_dir)
                )
        state.counters = final_counters(config, stall_timeout, here, peer)
    finally:
        if supervisor is not None:
            supervisor.stop()
        if peer is not None:
            peer.close()
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"voxkey: logs kept in {run_dir}", file=sys.stderr)
    return state


def final_counters(config: dict, timeout_s: float, here: tuple[str, ...], peer: Peer) -> dict:
    """Every stage's counters as they are now, asked: a heartbeat's may be a period old.
    A stage restarted near the end answers once it has loaded again, which on a busy
    machine takes seconds: it is given as long as a stall. A stage on another host
    cannot be asked (control sockets are local): its last heartbeat's counters."""
    return {
        stage: typed(StageStatus, ask(config, stage, "status", {}, timeout_s)).counters
        if stage in here
        else dict(peer.heard[stage].counters)
        for stage in wiring.STAGES
    }


def kept_logs_hint(keep: bool, run_dir: Path) -> str:
    return f"; logs in {run_dir}" if keep else "; voxkey replay --keep keeps the stages' logs"


def _all_ready(peer: Peer) -> bool:
    return all(beat is not None and beat.ready for beat in peer.heard.values())


def _capture_state(peer: Peer) -> str:
    beat = peer.heard.get("capture")
    return beat.state if beat is not None else ""
