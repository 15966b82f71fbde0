"""One stage in-process: frames in, frames out, no sockets and no other processes.

The stage's real hooks and the real runtime (delivery, sequencing, control frames
first, persisted state) run; only the bus is a stand-in that records what the stage
publishes and says every peer hears it. `crash()` drops the instance without any
teardown and builds a new one on the same run directory, as a SIGKILL and a restart
by supervisord would.

    stage = Harness(Router, tmp_path)
    stage.send("asr", Transcript("Hello."), utt="u1", reliable=True)
    [keystrokes] = stage.published("keystrokes")
    stage.ack(keystrokes)
"""

import os

from bus import config as configuration
from bus import wiring
from bus.frames import Ack, Frame
from bus.peer import Accounts


class StandInPeer(Accounts):
    """What a stage's Peer does, minus the sockets: every frame sent is kept (numbered as
    the Peer numbers it), and every peer hears this process."""

    def __init__(self, name: str, listen: list[str], topics: list[str] = ()):
        super().__init__(name, listen, list(topics), log=None)
        self.sent: list[Frame] = []

    def send(self, frame: Frame) -> None:
        self.number(frame)
        self.sent.append(frame)

    def hears_me(self, name: str) -> bool:
        return True

    def pid_of(self, name: str) -> int:
        return os.getpid()

    def heard_all(self) -> bool:
        return True

    def heard_pids(self) -> dict[str, int]:
        return {}

    def take_joined(self) -> bool:
        return False

    def reject(self, rejected) -> None:
        self.counters[f"rejected.{rejected.reason}"] += 1

    def heartbeat(
        self, ready: bool, state: str, cpus: list, progress: dict | None = None, sent_through: dict | None = None
    ) -> None:
        self.counters["heartbeats"] += 1

    class NoSocket:
        """Frames reach a harnessed stage through `Harness.send`: none waits on a socket."""

        @staticmethod
        def poll(timeout: int = 0) -> bool:
            return False

    sub = NoSocket()


class Harness:
    def __init__(self, stage_class, run_dir, *overrides: str):
        self.stage_class = stage_class
        self.config = configuration.load(overrides=[f'bus.run_dir="{run_dir}"', *overrides])
        self.stage = self._start()

    def _start(self):
        stage = self.stage_class(self.config)
        stage.attach(StandInPeer(stage.name, stage.listens_to(), list(wiring.consumes(stage.name))))
        stage.setup()
        stage.loaded = True
        return stage

    def crash(self) -> None:
        """Lose this instance as SIGKILL would (nothing saved beyond what it saved), and
        start a new one on the same state."""
        self.stage = self._start()

    def send(
        self,
        src: str,
        body,
        *,
        utt: str = "",
        key: str = "",
        marks: dict | None = None,
        payload: bytes = b"",
        reliable: bool = False,
        pos: int = 0,
        to_pid: int | None = None,
    ) -> Frame:
        """A frame from `src`; `reliable` hands it over as a reliable frame keyed by
        `key` (default: the utterance id), addressed to this process unless `to_pid`
        says otherwise. Everything it lets the stage do is done."""
        key = key or (utt if reliable else "")
        to_pid = (os.getpid() if key else 0) if to_pid is None else to_pid
        frame = Frame(
            body=body,
            src=src,
            utt=utt,
            marks=dict(marks or {}),
            payload=payload,
            to=self.stage.name if key else "",
            to_pid=to_pid,
            key=key,
            pos=pos,
        )
        self.stage.arrive(frame)
        self.run()
        return frame

    def run(self) -> None:
        while self.stage.work_one():
            pass

    def ack(self, *frames: Frame, by: str = "") -> None:
        """The consumer of each frame acknowledges it."""
        for frame in frames:
            self.stage.arrive(
                Frame(body=Ack(topic=frame.topic, keys=[frame.key]), src=by or frame.to, to=self.stage.name)
            )
        self.run()

    def published(self, topic: str | None = None, to: str | None = None) -> list[Frame]:
        return [f for f in self.stage.peer.sent if (topic is None or f.topic == topic) and (to is None or f.to == to)]

    def acks(self, to: str | None = None) -> list[Frame]:
        return self.published("ack", to)

    def clear(self) -> None:
        self.stage.peer.sent.clear()


def keys_typing_to_a_file(stage_class, run_dir, *overrides: str) -> Harness:
    """keys in process with the file sink: `harness.sink` is the document it types."""
    sink = run_dir / "typed.txt"
    harness = Harness(stage_class, run_dir, f'stages.keys.sink="file:{sink}"', *overrides)
    harness.sink = sink
    return harness
