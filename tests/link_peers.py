"""Two stage processes on the real runtime for tests/test_network_link.py, one on each
side of a network link: `teller` (in asr's place) hands `VOXKEY_LINK_COUNT` numbered
transcripts to `taker` (in the router's), one every `VOXKEY_LINK_EVERY_S`; the taker
writes each it takes to `VOXKEY_LINK_OUT/taken`, and each writes its counters to
`VOXKEY_LINK_OUT/NAME.json` when it stops (the teller also once all it told is
acknowledged).

    python tests/link_peers.py teller|taker --config FILE
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.frames import Frame, Transcript  # noqa: E402
from bus.stage import UNTIL_WOKEN, Stage, main  # noqa: E402

OUT = Path(os.environ.get("VOXKEY_LINK_OUT", "."))


def said(number: int) -> str:
    return f"utterance {number}"


class Reporting(Stage):
    def report(self, name: str) -> None:
        written = OUT / f"{name}.json.new"
        written.write_text(json.dumps(dict(self.peer.counters)))
        written.replace(OUT / f"{name}.json")

    def teardown(self) -> None:
        self.report(self.label)


class Teller(Reporting):
    name, label = "asr", "teller"

    def setup(self) -> None:
        self.count = int(os.environ["VOXKEY_LINK_COUNT"])
        self.every_s = float(os.environ["VOXKEY_LINK_EVERY_S"])
        self.told, self.next_at, self.done = 0, 0.0, False

    def tick(self) -> float:
        now = time.monotonic()
        if self.told < self.count and self.peer.hears_me("router") and now >= self.next_at:
            self.publish(Transcript(text=said(self.told)), utt=f"u{self.told}", key=f"u{self.told}")
            self.told, self.next_at = self.told + 1, now + self.every_s
        if self.told == self.count and not self.delivery.pending("router") and not self.done:
            self.done = True
            self.report("teller-done")
        return UNTIL_WOKEN if self.done else max(0.0, min(self.next_at - now, 0.1))


class Taker(Reporting):
    name, label = "router", "taker"

    def setup(self) -> None:
        self.taken = (OUT / "taken").open("a")

    def handle(self, frame: Frame) -> None:
        self.taken.write(frame.body.text + "\n")
        self.taken.flush()


if __name__ == "__main__":
    main({"teller": Teller, "taker": Taker}[sys.argv.pop(1)])
