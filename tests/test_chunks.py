"""keys types a long piece in chunks and writes down after each how far it got: killed
mid-piece, it types the rest once when the piece comes again, with at most one chunk
in doubt, and says so. In-process (frames in, frames out, the real file sink), then
keys as a real process killed with SIGKILL while its sink is stuck in a chunk."""

import fcntl
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


# A pipe's buffer at the least (one page), and the most a write puts in it whole (PIPE_BUF).
PIPE = 4096
CHUNK = 4000  # more than half the pipe: it holds one chunk at a time
LONG_TEXT = " ".join(f"Sentence {n} of a long answer, typed in chunks." for n in range(300))  # 14 kB, 4 chunks


class FifoApp:
    """The app keys types into: a FIFO whose buffer is cut to one page, read by a thread
    one read per chunk let through. A chunk is written whole or not at all (it is at
    most PIPE_BUF bytes) and the pipe holds only one, so the sink is held in its write of
    the chunk after the one waiting in the pipe until the reader takes that one: the
    test decides how far typing gets, with no timing."""

    def __init__(self, path):
        os.mkfifo(path, 0o600)
        # Both ends open here: the sink's opens never wait, and a read waits for data
        # rather than seeing an end between two chunks.
        self.fd = os.open(path, os.O_RDWR)
        fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, PIPE)
        self.path, self.received = path, []
        self.gate = threading.Semaphore(0)
        self.open_gate = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def let_through(self, chunks: int = 1) -> None:
        for _ in range(chunks):
            self.gate.release()

    def _read(self) -> None:
        while True:
            self.gate.acquire()
            if self.open_gate is None:
                return
            data = os.read(self.fd, 1 << 16)  # one chunk: the pipe never holds more
            with self.changed:
                self.received.append(data.decode())
                self.changed.notify_all()
            if self.open_gate:
                self.gate.release()

    def wait_received(self, chars: int) -> None:
        """Until this much has arrived: keys reports a chunk typed once the sink wrote it,
        which may be before this reader has taken it in."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.text()) >= chars, timeout=60), self.received

    def open_up(self) -> None:
        """Every chunk from now on goes through."""
        self.open_gate = True
        self.gate.release()

    def text(self) -> str:
        return "".join(self.received)

    def close(self) -> None:
        self.open_gate = None
        self.gate.release()
        os.write(self.fd, b" ")  # a reader waiting for data is freed by a byte
        self.thread.join(10)
        os.close(self.fd)


def until(stage: LoneStage, condition, what: str, seconds: float = 60) -> None:
    """Pump the test's peers until `condition()` holds (each turn waits for the bus up to 20 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        stage.pump()
        stage.downstream.receive(20)


def test_keys_killed_mid_piece_types_the_rest_once_on_resend(tmp_path):
    app = FifoApp(tmp_path / "app.fifo")
    keys = LoneStage("keys", ["router"], f'stages.keys.sink="file:{app.path}"', f"stages.keys.chunk_chars={CHUNK}")
    chunks = chunked(LONG_TEXT, CHUNK)
    assert len(chunks) >= 4 and all(PIPE // 2 < len(chunk) <= CHUNK for chunk in chunks[:3])
    state = keys.run_dir / "keys.state.json"

    def typing_chunk_three() -> bool:
        done = json.loads(state.read_text())["typed"].get("u1") if state.exists() else None
        return bool(done) and done["given"] == "".join(chunks[:3]) and done["typing"] == len(chunks[2])

    try:
        keys.send("router", Keystrokes(LONG_TEXT, by="instruct"), utt="u1", key="u1+0")
        # The first chunk is taken in, the second waits in the pipe: the third cannot be written.
        app.let_through()
        until(keys, typing_chunk_three, "keys never began chunk three")
        keys.kill_and_restart()  # SIGKILL while the sink is stuck in chunk three
        app.open_up()
        keys.wait_ready()
        keys.send("router", Keystrokes(LONG_TEXT, by="instruct"), utt="u1", key="u1+0")
        [*_, typed] = keys.frames(lambda f: f.topic == "typed" and f.utt == "u1")
        assert typed.body.in_doubt == len(chunks[2]) and typed.body.final
        assert typed.body.already + typed.body.text == LONG_TEXT  # as listeners rebuild it
        expected = "".join(chunks[:2] + chunks[3:])  # whole once, one chunk missing
        app.wait_received(len(expected))
        assert app.text() == expected
    finally:
        stderr = keys.close()
        app.close()
    assert "killed while typing: one chunk may be missing" in stderr
    assert "Sentence" not in stderr  # the user's text never in the log
