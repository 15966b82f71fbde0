"""keys types a long piece in chunks and writes down after each how far it got: killed
mid-piece, it types the rest once when the piece comes again, with at most one chunk
in doubt, and says so. In-process (frames in, frames out, the real file sink), then
keys as a real process killed with SIGKILL while its sink is stuck in a chunk."""

import json
import os
import random
import threading
import time

import pytest
from conftest import LoneStage
from harness import Harness, keys_typing_to_a_file

from bus.frames import Keystrokes
from stages.keys.chunks import chunked
from stages.keys.stage import Keys, KeysState

# User-perceived characters a cut must never split: combining accents, a flag, a family
# (zero-width joiners), a skin tone, a keycap, CR LF, and plain letters around them.
GRAPHEMES = ["a", "b", " ", "e\u0301", "🇫🇷", "🇩🇪", "👨\u200d👩\u200d👧", "👍🏽", "1\ufe0f\u20e3", "\r\n", "ß", "\n"]
TEXT = " ".join(f"Sentence {n} of a long answer, typed in chunks." for n in range(8))  # 367 characters, 6 chunks


def test_a_cut_never_falls_inside_a_grapheme():
    rng = random.Random(21)
    for _ in range(300):
        clusters = [rng.choice(GRAPHEMES) for _ in range(rng.randint(1, 60))]
        text = "".join(clusters)
        cuts = {sum(map(len, clusters[:n])) for n in range(len(clusters) + 1)}  # where a cut may fall
        size = rng.randint(1, 12)
        chunks = chunked(text, size)
        assert "".join(chunks) == text
        ends = [sum(map(len, chunks[: n + 1])) for n in range(len(chunks))]
        assert set(ends) <= cuts, (text, chunks)
        longest = max(map(len, GRAPHEMES))
        assert all(len(chunk) < size + longest for chunk in chunks)
    assert chunked("", 8) == [] and chunked("abc", 0) == ["abc"]


class Recording:
    """The real file sink, and what keys' state file said each time a chunk was handed to it."""

    def __init__(self, sink, keys: Harness):
        self.sink, self.keys, self.calls = sink, keys, []
        self.name = sink.name

    def type(self, backspaces: int, text: str):
        state = self.keys.stage.load_state(KeysState).typed["u1"]
        self.calls.append((text, state.given, state.typing, state.final))
        return self.sink.type(backspaces, text)


class Killed(BaseException):
    """Stands in for SIGKILL inside a sink call: no handler of the stage catches it."""


def piece(keys, utt: str, text: str, offset: int = 0, final: bool = True, **fields) -> None:
    keys.send("router", Keystrokes(text=text, offset=offset, final=final, **fields), utt=utt, key=f"{utt}+{offset}")


@pytest.fixture
def keys(tmp_path):
    return keys_typing_to_a_file(Keys, tmp_path, "stages.keys.chunk_chars=64")


def test_each_chunk_is_written_down_before_it_is_pressed(keys):
    recording = keys.stage.sink = Recording(keys.stage.sink, keys)
    piece(keys, "u1", TEXT)
    chunks = chunked(TEXT, 64)
    assert len(chunks) == 6 and [call[0] for call in recording.calls] == chunks
    for n, (chunk, given, typing, final) in enumerate(recording.calls):
        assert given == "".join(chunks[: n + 1]) and typing == len(chunk)  # in doubt while the sink has it
        assert final == (n == len(chunks) - 1)  # a resend after a kill must not skip the rest
    done = keys.stage.load_state(KeysState).typed["u1"]
    assert (done.typing, done.final, done.given) == (0, True, TEXT)
    [typed] = keys.published("typed")
    assert (typed.body.text, typed.body.in_doubt) == (TEXT, 0)  # one report per piece, as before
    assert keys.sink.read_text() == TEXT


def test_killed_mid_piece_types_the_rest_once_and_says_one_chunk_is_in_doubt(keys):
    real, chunks = keys.stage.sink, chunked(TEXT, 64)

    class DiesInChunkThree:
        name = "file"

        def type(self, backspaces: int, text: str):
            if text == chunks[2]:
                raise Killed
            return real.type(backspaces, text)

    piece(keys, "u0", "Mine.", by="router")
    keys.stage.sink = DiesInChunkThree()
    with pytest.raises(Killed):
        piece(keys, "u1", TEXT, by="instruct")
    keys.crash()  # a new keys on the same state, as supervisord's restart
    assert keys.stage.peer.counters["chunks_in_doubt"] == 1
    keys.clear()
    piece(keys, "u1", TEXT, by="instruct")  # the router sends it again: it was never acknowledged
    [typed] = keys.published("typed")
    assert typed.body.already == "".join(chunks[:3]) and typed.body.text == "".join(chunks[3:])
    assert typed.body.in_doubt == len(chunks[2])
    assert keys.sink.read_text() == "Mine." + "".join(chunks[:2] + chunks[3:])  # the chunk in doubt is not typed twice
    piece(keys, "u1", TEXT, by="instruct")  # and again: typed once
    assert keys.sink.read_text() == "Mine." + "".join(chunks[:2] + chunks[3:])

    # "Scratch that" erases what keys knows reached the app, not the chunk it cannot vouch for.
    piece(keys, "u2", "", backspaces=len(TEXT), erases="u1", by="router")
    assert keys.sink.read_text() == "Mine."  # the user's own text before it kept whole
    assert keys.published("typed")[-1].body.backspaces == len(TEXT) - len(chunks[2])


# --- keys as a real process, killed while its sink is stuck in a chunk ----------------


class FifoApp:
    """The app keys types into: a FIFO the file sink opens once per chunk, read by a
    thread that opens it only when let through. A chunk not let through holds the sink
    in its open(): the test decides how far typing gets, with no timing. One open may
    take in more than one chunk (the sink opens it for the next before this reader has
    seen the last one close), so how far typing got is read from what arrived."""

    def __init__(self, path):
        os.mkfifo(path, 0o600)
        self.path, self.received, self.opened = path, [], 0
        self.gate = threading.Semaphore(0)
        self.open_gate = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def let_through(self, calls: int = 1) -> None:
        for _ in range(calls):
            self.gate.release()

    def _read(self) -> None:
        while True:
            self.gate.acquire()
            if self.open_gate is None:
                return
            with open(self.path, "rb") as fifo:  # blocks until the sink opens it
                data = fifo.read()  # until the sink closes it
            with self.changed:
                self.opened += 1
                self.received.append(data.decode())
                self.changed.notify_all()
            if self.open_gate:
                self.gate.release()

    def wait_opened(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.opened >= count, timeout=60), self.received

    def open_up(self) -> None:
        """Every chunk from now on goes through."""
        self.open_gate = True
        self.gate.release()

    def text(self) -> str:
        return "".join(self.received)

    def close(self) -> None:
        self.open_gate = None
        self.gate.release()
        try:  # a reader stuck in open() is freed by a writer that opens and closes at once
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        self.thread.join(10)


def until(stage: LoneStage, condition, what: str, seconds: float = 60) -> None:
    """Pump the test's peers until `condition()` holds (each turn waits for the bus up to 20 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        stage.pump()
        stage.downstream.receive(20)


def test_keys_killed_mid_piece_types_the_rest_once_on_resend(tmp_path):
    app = FifoApp(tmp_path / "app.fifo")
    app.let_through()  # the sink opens its file once at setup
    keys = LoneStage("keys", ["router"], f'stages.keys.sink="file:{app.path}"', "stages.keys.chunk_chars=64")
    chunks = chunked(TEXT, 64)
    state = keys.run_dir / "keys.state.json"
    stuck = []  # the chunk keys is held in: written down as being typed, none of it arrived

    def held_in_a_chunk() -> bool:
        done = json.loads(state.read_text())["typed"].get("u1") if state.exists() else None
        if app.opened < 3 or not done or not done["typing"]:
            return False  # the reader is not yet back at its gate, or keys is between chunks
        index = next((i for i in range(len(chunks)) if done["given"] == "".join(chunks[: i + 1])), None)
        if index is None or app.text() != "".join(chunks[:index]):
            return False  # the chunk being typed arrived: keys will write down the next
        stuck.append(index)
        return True

    try:
        app.wait_opened(1)
        keys.send("router", Keystrokes(TEXT, by="instruct"), utt="u1", key="u1+0")
        app.let_through(2)
        # Two opens let through; the chunk after what they took in cannot open: no reader.
        until(keys, held_in_a_chunk, "keys was never held in a chunk")
        [index] = stuck
        keys.kill_and_restart()  # SIGKILL while the sink is stuck in that chunk
        app.open_up()
        keys.wait_ready()
        keys.send("router", Keystrokes(TEXT, by="instruct"), utt="u1", key="u1+0")
        [*_, typed] = keys.frames(lambda f: f.topic == "typed" and f.utt == "u1")
        assert typed.body.in_doubt == len(chunks[index]) and typed.body.final
        assert typed.body.already + typed.body.text == TEXT  # as listeners rebuild it
        assert app.text() == "".join(chunks[:index] + chunks[index + 1 :])  # whole once, one chunk missing
    finally:
        stderr = keys.close()
        app.close()
    assert "killed while typing: one chunk may be missing" in stderr
    assert "Sentence" not in stderr  # the user's text never in the log
