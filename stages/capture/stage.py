"""capture: a microphone or a recording -> `audio` frames.

Consumes: `start` from the CLI when `wait_for_start` is set (a replay waits until every
stage is ready, so nothing is sent before anyone listens).
Produces, handed over reliably to vad (bus/delivery.py): `stream-start` with the audio
format; `audio` frames of `frame_samples` 16 kHz mono int16 samples (or a whole
multiple: see "Cheap when idle"), each marked `capture` (when its last sample was
spoken; for a recording replayed as fast as possible, when it would have been);
`stream-stop` after a recording's last frame.
Listening (control command `listen`, or the `hotkey`; stages/capture/listening.py):
while off, no audio leaves capture. Turning a microphone off ends its stream (vad
completes the utterance in progress, which is typed: it was said while listening);
turning it on begins a new one from the moment the command was given, from the last
seconds kept while off, so the first word survives a slow key binding. A recording is
paused instead, like a tape. Listening survives a restart (`CaptureState`).
Cheap when idle: while off, a microphone's blocks are only kept, raw, by its reader
thread (stages/capture/microphone.py), twice a second: the stage is not woken and
converts nothing until listening resumes. While vad hears silence, a microphone's frames are gathered
`silent_frames` at a time into one `audio` frame: vad acknowledges each batch of silence
it has judged, and capture gathers only while the last frame it sent was followed by
such an acknowledgement, so from vad's first unacknowledged frame (speech has begun) each
frame leaves as soon as it is captured again, and the end of speech is heard no later.
Guarantees: any rate and channel count is converted; a microphone's overflows and a
recording's undecodable audio are counted, never silently skipped. Audio stays here
until vad acknowledges the sample it no longer needs and goes again to a restarted
vad; a recording is never sent more than `retain_s` ahead of that, and a microphone,
which cannot wait, drops and counts what is older (`retention_overflow`).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bus.frames import SAMPLE_RATE, AudioChunk, Frame, Start, StreamStart, StreamStop, now_ns
from bus.progress import CaptureProgress
from bus.stage import UNTIL_WOKEN, Stage, StageError
from stages.capture import audio
from stages.capture.hotkey import Hotkey, HotkeyUnavailable
from stages.capture.listening import Listening, in_order, listen
from stages.capture.microphone import Microphone

FAST_BATCH = 32  # frames sent per loop turn when replaying as fast as possible
# Audio kept while not listening, for a `listen on` that was given before it arrived.
# A key binding that starts a Python process takes a few hundred ms on a Pi 5.
KEPT_WHILE_OFF_S = 10.0


@dataclass
class CaptureState:
    """What capture keeps in its state file: whether it listens (None: never told, so
    `listening` in the configuration says)."""

    listening: Listening | None = None
    given_ns: int = 0  # when the last listen command applied was given (CLOCK_MONOTONIC)


class Capture(Stage):
    name = "capture"

    def setup(self) -> None:
        source = str(self.settings["source"])
        self.frame_samples = int(self.settings["frame_samples"])
        self.frame_ns = self.frame_samples * 1_000_000_000 // SAMPLE_RATE
        self.sent = 0  # frames sent
        # Where the next sample goes in what this process sends: streams follow one another
        # in it, and audio not listened to takes its place too, so positions only grow.
        self.offset = 0
        self.started_ns = 0
        saved = self.load_state(CaptureState)
        self.listening = saved.listening or Listening(bool(self.settings["listening"]))
        self.given_ns = saved.given_ns
        self.stream = ""
        self.stopped_at = -1  # the delivery position of the last stream-stop
        self.silent_frames = max(1, int(self.settings["silent_frames"]))
        self.gathered: list[tuple[np.ndarray, int]] = []  # frames not sent yet, while vad hears silence
        self.silence_heard = False  # vad acknowledged audio since the last frame was sent
        self.not_listened = 0  # samples kept (not sent) while off, as counted so far
        self.hotkey_problem = ""
        self.hotkey = self._open_hotkey(str(self.settings["hotkey"]), str(self.settings["hotkey_action"]))
        self.retain_frames = int(float(self.settings["retain_s"]) * SAMPLE_RATE / self.frame_samples)
        if source == "mic" or source.startswith("mic:"):
            self.source = Microphone(
                source.partition(":")[2] or None, self.frame_samples, self.peer.counters, KEPT_WHILE_OFF_S
            )
            self.wake_fd = self.source.wake_fd
            self.source.keeping = not self.listening.on
            self.realtime = True
        else:
            try:
                audio.probe(source)
            except audio.UnreadableAudio as error:
                raise StageError(str(error)) from None
            self.source = audio.fixed_frames(audio.read_pcm16(source, self._undecodable), self.frame_samples)
            self.recording = Path(source).stem
            self.realtime = bool(self.settings["realtime"])
        self.paused_ns = 0  # when a recording was paused
        self.state = "waiting" if self.settings.get("wait_for_start") else "streaming"
        self._publish_progress()
        if self.state == "streaming":
            self._begin()

    def signal(self, frame: Frame) -> None:
        if isinstance(frame.body, Start) and self.state == "waiting":
            self._begin()

    def _begin(self) -> None:
        self.state = "streaming"
        self.started_ns = now_ns()
        self._publish_progress()
        if isinstance(self.source, Microphone):
            self.source.open()
            self.log.info(
                "microphone open", device=self.source.name, rate=self.source.rate, channels=self.source.channels
            )
        self.log.info("streaming", realtime=self.realtime, listening=self.listening.on)
        if self.listening.on or not isinstance(self.source, Microphone):
            self._open_stream()  # a recording's stream is paused, never closed, while off

    def _open_hotkey(self, key: str, action: str) -> Hotkey | None:
        if not key:
            return None
        try:
            hotkey = Hotkey(key, action)
        except HotkeyUnavailable as why:
            self.peer.counters["hotkey_unavailable"] += 1
            self.hotkey_problem = f"hotkey {key} unavailable: {why}"
            self.log.error(self.hotkey_problem)
            return None
        self.log.info("hotkey", key=hotkey.key, action=action, keyboards=[d.name for d in hotkey.devices])
        return hotkey

    def on_control(self, command: str, args: dict):
        if command != "listen":
            return super().on_control(command, args)
        how = str(args.get("how", ""))
        taken = self._command(how, int(args.get("since_ns") or now_ns()))
        said = "listening" if self.listening.on else "not listening"
        return said if taken else f"{said} ({how} was given before the last listen command: ignored)"

    def _command(self, how: str, given_ns: int) -> bool:
        """Apply a listen command in the order commands were given, not the order they
        arrived: a push-to-talk `hold` whose process started late, and so came after its
        `release`, must not leave the microphone on. False for one given too early."""
        new = listen(self.listening, how)
        if not in_order(given_ns, self.given_ns):
            self.peer.counters["listen_commands_out_of_order"] += 1
            self.log.warning("listen command given before the last one: ignored", how=how)
            return False
        self.given_ns = given_ns
        self._apply(new, given_ns)
        self.save_state(CaptureState(self.listening, self.given_ns))
        return True

    def _apply(self, new: Listening, since_ns: int) -> None:
        if new == self.listening:
            return
        if isinstance(self.source, Microphone):
            if self.state != "streaming":
                self.source.keeping = not new.on  # not open yet
            elif self.listening.on and not new.on:
                self.source.keep()  # what was queued before, the command goes as the state was
            self._take_microphone()
        was_on, self.listening = self.listening.on, new
        self._publish_progress()
        self.log.info("listening" if new.on else "not listening", held=new.held)
        if was_on == new.on or self.state != "streaming":
            return
        if not isinstance(self.source, Microphone):
            self._pause_or_resume_recording(new.on)
        elif new.on:
            self._count_not_listened()
            self._open_stream()
            for block, captured_ns in self.source.resume(since_ns):
                self._send(block, captured_ns)
        else:
            self._close_stream()

    def _open_stream(self) -> None:
        # The timeline skips past the last stop: a new stream's start must come after it.
        self.offset = max(self.offset, self.stopped_at + 1)
        if isinstance(self.source, Microphone):
            self.stream = f"mic-{os.getpid()}-{now_ns()}"
        else:
            self.stream = self.recording
        self.publish(
            StreamStart(stream=self.stream, offset=self.offset, live=self.realtime),
            key=f"start@{self.stream}",
            position=self.offset,
        )
        self.log.info("stream begins", stream=self.stream, offset=self.offset)

    def _close_stream(self) -> None:
        self._send_gathered()
        self.stopped_at = self.offset + 1
        self.publish(
            StreamStop(stream=self.stream, samples=self.offset),
            marks={"capture": now_ns()},
            key=f"stop@{self.stream}",
            position=self.stopped_at,
        )
        self.log.info("stream ends", stream=self.stream, samples=self.offset)

    def _pause_or_resume_recording(self, on: bool) -> None:
        if on:  # a recording in real time resumes where it paused, not where the clock is
            self.started_ns += now_ns() - self.paused_ns
            self._publish_progress()
        else:
            self.paused_ns = now_ns()

    def _publish_progress(self) -> None:
        self.progress = CaptureProgress(
            listening=self.listening.on,
            held=self.listening.held,
            # When a recording's sample 0 was due (moved on by pauses): a trace can
            # then tell where in the recording speech really ended, and when that was.
            stream_started_ns=0 if isinstance(self.source, Microphone) else self.started_ns,
            hotkey=self.hotkey_problem,
        )

    def tick(self) -> float:
        if self.hotkey is not None:
            for command in self.hotkey.commands():
                self._command(command, now_ns())
        if self.state != "streaming":
            return UNTIL_WOKEN  # a `start` frame or a `listen` request wakes us
        if isinstance(self.source, Microphone):
            if self.source.failed and not self.peer.counters["microphone_failed"]:
                self.peer.counters["microphone_failed"] += 1  # said once: the reader has stopped
                self.log.error(self.source.failed)
            if not self.listening.on:
                self._count_not_listened()
                return UNTIL_WOKEN  # nothing to take: the reader keeps the audio
            self._take_microphone()
            self._drop_beyond_retention()
            return UNTIL_WOKEN  # the reader wakes us (wake_fd)
        if not self.listening.on:
            return UNTIL_WOKEN
        unacknowledged = self.delivery.count("vad")
        if unacknowledged >= self.retain_frames:
            return UNTIL_WOKEN  # a recording waits for vad's acknowledgements rather than outrun what it keeps
        budget = self.retain_frames - unacknowledged if not self.realtime else self._frames_due()
        for _ in range(min(budget, FAST_BATCH)):
            try:
                block = next(self.source, None)
            except audio.UnreadableAudio as error:  # what was decoded is sent; the rest cannot be
                self._undecodable(str(error))
                block = None
            if block is None:
                return self._finish()
            self._send(block, self._due_ns(self.sent))
        if not self.realtime:
            return 0.0
        return max(0.0, (self._due_ns(self.sent) - now_ns()) / 1e9)

    def watched(self) -> tuple[int, ...]:
        return self.hotkey.fds() if self.hotkey is not None else ()

    def _undecodable(self, message: str) -> None:
        self.peer.counters["undecodable"] += 1
        self.log.warning("recording damaged", detail=message)

    def _due_ns(self, index: int) -> int:
        # A frame "arrives" when its last sample would have been spoken.
        return self.started_ns + (index + 1) * self.frame_ns

    def _frames_due(self) -> int:
        return max(0, (now_ns() - self.started_ns) // self.frame_ns - self.sent)

    def _take_microphone(self) -> None:
        for block, captured_ns in self.source.drain():
            if not self.listening.on:  # not queued while off (Microphone.keep): a stray
                self.offset += len(block)
                self.peer.counters["samples_not_listened"] += len(block)
                continue
            self.gathered.append((block, captured_ns))
            if not self.silence_heard or len(self.gathered) >= self.silent_frames:
                self._send_gathered()

    def _send_gathered(self) -> None:
        if self.gathered:
            blocks, self.gathered = self.gathered, []
            self._send(np.concatenate([block for block, _ in blocks]), blocks[-1][1])

    def on_acknowledged(self, frames: list[Frame]) -> None:
        # vad acknowledges audio as it judges silence, not while speech goes on.
        self.silence_heard = True
        if isinstance(self.source, Microphone):  # woken only when the frame is whole
            self.source.wake_after(self.silent_frames - len(self.gathered))

    def _count_not_listened(self) -> None:
        """The audio the microphone kept while off takes its place in the timeline (and
        the counters): from the reader's count, without touching the audio."""
        kept = self.source.kept_frames * SAMPLE_RATE // self.source.rate
        if kept > self.not_listened:
            self.offset += kept - self.not_listened
            self.peer.counters["samples_not_listened"] += kept - self.not_listened
            self.not_listened = kept

    def _send(self, block: np.ndarray, captured_ns: int) -> None:
        self.silence_heard = False  # until vad acknowledges audio again
        if isinstance(self.source, Microphone):
            self.source.wake_after(1)
        payload = block.astype("<i2", copy=False).tobytes()
        # Positioned by the sample after it: vad acknowledges by the first sample it needs.
        self.publish(
            AudioChunk(stream=self.stream, offset=self.offset),
            marks={"capture": captured_ns},
            payload=payload,
            key=str(self.offset),
            position=self.offset + len(block),
        )
        self.offset += len(block)
        self.sent += 1

    def _drop_beyond_retention(self) -> None:
        dropped = self.delivery.trim("vad", self.retain_frames)
        if dropped:
            self.peer.counters["retention_overflow"] += dropped

    def _finish(self) -> float:
        self._close_stream()
        self.state = "done"
        self.log.info("recording done", frames=self.sent, seconds=round(self.sent * self.frame_ns / 1e9, 2))
        return UNTIL_WOKEN

    def teardown(self) -> None:
        if isinstance(self.source, Microphone):
            self.source.close()
