"""Reliable hand-over (bus/delivery.py) and each stage's part in it, in-process: frames in,
frames out, crashes simulated at chosen points of the protocol by dropping the stage
instance and starting a new one on the same state file (tests/harness.py)."""

import json
from collections import Counter

import numpy as np
import pytest
import structlog
from harness import Harness

from bus.delivery import Delivery, freeze, thaw
from bus.frames import Ack, AudioChunk, Frame, Keystrokes, Speech, StreamStart, StreamStop, Transcript, Voice
from bus.progress import VadProgress
from stages.keys.stage import Keys
from stages.router.stage import Router
from stages.vad.stage import Vad


class Wire:
    """A Delivery's view of the bus: what it sent, and which peers hear it."""

    def __init__(self):
        self.sent: list[Frame] = []
        self.hearing: set[str] = set()
        self.pids: dict[str, int] = {}  # each peer's current process
        self.counters = Counter()

    def delivery(self, name: str) -> Delivery:
        return Delivery(
            name,
            self.sent.append,
            lambda peer: peer in self.hearing,
            lambda peer: self.pids.get(peer, 100),
            self.counters,
            structlog.get_logger(),
        )


def frame_for(to: str, key: str, topic_body=None) -> Frame:
    return Frame(body=topic_body or Transcript(text=key), src="asr", utt=key, to=to, key=key)


# --- the outbox and the inbox, alone -------------------------------------------


def test_nothing_is_sent_before_the_consumer_hears_us_and_all_of_it_after():
    wire = Wire()
    out = wire.delivery("asr")
    out.put(frame_for("router", "u1"))
    out.put(frame_for("router", "u2"))
    out.put(frame_for("router", "u1"))  # made again before it could go: it goes once
    assert wire.sent == []
    wire.hearing.add("router")
    out.heard_from("router")
    out.heard_from("router")
    assert [f.key for f in wire.sent] == ["u1", "u2"] and [f.pos for f in wire.sent] == [1, 2]


def test_a_restarted_consumer_gets_again_only_what_it_had_not_acknowledged():
    wire = Wire()
    wire.hearing |= {"instruct", "thinking"}
    out = wire.delivery("router")
    out.put(frame_for("instruct", "a"))
    out.put(frame_for("instruct", "b"))
    out.put(frame_for("thinking", "c"))
    out.on_ack(Frame(body=Ack(topic="transcript", keys=["a"]), src="instruct", to="router"))
    wire.sent.clear()
    wire.pids["thinking"] = 200
    out.peer_restarted("thinking")  # thinking lost "c"; instruct is untouched
    out.heard_from("thinking")
    out.heard_from("instruct")
    assert [(f.to, f.key, f.to_pid) for f in wire.sent] == [("thinking", "c", 200)]


def test_an_input_is_acknowledged_only_once_everything_it_caused_is():
    wire = Wire()
    wire.hearing |= {"vad", "router"}
    asr = wire.delivery("asr")
    speech = Frame(body=Speech(stream="s", start_sample=0), src="vad", utt="u1", to="asr", key="u1")
    assert asr.receive(speech)
    asr.put(frame_for("router", "u1"), cause=("vad", "speech", "u1"))
    asr.handled(("vad", "speech", "u1"))
    assert [f for f in wire.sent if f.topic == "ack"] == []
    asr.on_ack(Frame(body=Ack(topic="transcript", keys=["u1"]), src="router", to="asr"))
    [ack] = [f for f in wire.sent if f.topic == "ack"]
    assert (ack.to, ack.body.topic, ack.body.keys) == ("vad", "speech", ["u1"])


def test_a_repeat_is_ignored_while_worked_on_and_acknowledged_again_once_done():
    wire = Wire()
    wire.hearing.add("vad")
    asr = wire.delivery("asr")
    speech = Frame(body=Speech(stream="s", start_sample=0), src="vad", utt="u1", to="asr", key="u1")
    assert asr.receive(speech) is True
    assert asr.receive(speech) is False and wire.sent == []  # being worked on
    asr.handled(("vad", "speech", "u1"))
    assert asr.receive(speech) is False  # done: acknowledged again, not handled again
    assert [f.body.keys for f in wire.sent] == [["u1"], ["u1"]]


def test_acknowledgements_wait_for_the_producer_to_hear_us():
    wire = Wire()
    vad = wire.delivery("vad")
    vad.acknowledge_through("capture", "audio", 512)
    vad.acknowledge_through("capture", "audio", 1024)  # supersedes the first
    assert wire.sent == []
    wire.hearing.add("capture")
    vad.heard_from("capture")
    assert [f.body.through for f in wire.sent] == [1024]


def test_a_frame_survives_being_written_down():
    frame = Frame(
        body=Speech(stream="s", start_sample=16000, part=1),
        src="vad",
        utt="s@1000ms",
        marks={"vad": 5},
        payload=b"\x01\x02" * 100,
        to="asr",
        key="s@1000ms",
        pos=3,
    )
    assert thaw(freeze(frame)) == frame


# --- router: one utterance at the keyboard at a time ------------------------------


def transcript(stage: Harness, utt: str, text: str, **fields) -> None:
    stage.send("asr", Transcript(text=text, **fields), utt=utt, reliable=True)


def test_the_router_takes_the_next_utterance_only_once_the_last_is_typed(tmp_path):
    router = Harness(Router, tmp_path, "stages.router.mode=clarify")
    transcript(router, "u1", "First sentence.")
    transcript(router, "u2", "Second sentence.")
    transcript(router, "u3", "Third sentence.")
    [request] = router.published("request")
    assert (request.utt, request.to) == ("u1", "instruct")  # u2 waits
    piece = router.send("instruct", Keystrokes(text="First sentence.", final=True, offset=0), utt="u1", key="u1+0")
    [keystrokes] = router.published("keystrokes")
    assert router.published("request") == [request]  # still waiting: keys has not typed it
    router.ack(keystrokes)
    assert [a.body.keys for a in router.acks("instruct")] == [[piece.key]]
    router.ack(request)  # instruct is done with it once its pieces are
    assert [a.body.keys for a in router.acks("asr")] == [["u1"]]
    assert [f.utt for f in router.published("request")] == ["u1", "u2"], "the next, and only the next"


def test_new_speech_cuts_a_chat_answer_but_never_a_clarified_utterance(tmp_path):
    router = Harness(Router, tmp_path)
    transcript(router, "u1", "Clarify. I want to go home.")
    router.send("vad", Voice(stream="s", offset=99_000, live=True))
    assert router.published("cancel") == []
    router.clear()
    router.crash()
    transcript(router, "u2", "Chat. What is the capital of France?")
    router.send("vad", Voice(stream="s", offset=99_000, live=True))
    assert router.published("cancel") == [], "an answer not begun is not cut: the user would get none"
    router.send("instruct", Keystrokes(text=" Paris", final=False, offset=0), utt="u2", key="u2+0")
    router.send("vad", Voice(stream="s", offset=99_000, live=False))
    assert router.published("cancel") == [], "a replay faster than speech has no 'while'"
    router.send("vad", Voice(stream="s", offset=99_000, live=True))
    [cancel] = router.published("cancel")
    assert cancel.utt == "u2"


def test_a_long_utterance_cut_in_parts_keeps_the_mode_of_its_first_part(tmp_path):
    router = Harness(Router, tmp_path)
    transcript(router, "p0", "Chat. Tell me about the history of", part=0, last_part=False)
    [nothing] = router.published("keystrokes")
    assert nothing.body.text == "" and router.published("request") == []
    router.ack(nothing)
    transcript(router, "p1", "the Roman empire.", part=1, last_part=True)
    [request] = router.published("request")
    assert (request.body.mode, request.body.text) == ("chat", "Tell me about the history of the Roman empire.")


def test_a_transcript_that_comes_again_after_a_router_crash_gets_the_same_decision(tmp_path):
    router = Harness(Router, tmp_path)
    transcript(router, "u1", "Switch to chat mode.")
    transcript(router, "u1b", "Hello there.")  # waits behind u1
    router.crash()  # before keys acknowledged anything
    transcript(router, "u1", "Switch to chat mode.")  # asr sends again what is unacknowledged
    transcript(router, "u1b", "Hello there.")
    [first] = router.published("keystrokes")
    assert first.body.text == "" and router.stage.mode == "chat"
    router.ack(first)
    [request] = router.published("request")
    assert (request.utt, request.body.mode) == ("u1b", "chat")


# --- keys: each place typed once, two answers never spliced -----------------------


@pytest.fixture
def keys(tmp_path):
    sink = tmp_path / "typed.txt"
    harness = Harness(Keys, tmp_path / "run", f'stages.keys.sink="file:{sink}"')
    harness.sink = sink
    return harness


@pytest.fixture(autouse=True)
def run_dir(tmp_path):
    (tmp_path / "run").mkdir(mode=0o700)


def piece(keys: Harness, utt: str, text: str, offset: int, final: bool, by: str = "instruct") -> None:
    keys.send("router", Keystrokes(text=text, offset=offset, final=final, by=by), utt=utt, key=f"{utt}+{offset}")


def test_a_different_regeneration_after_a_crash_is_never_spliced(keys):
    piece(keys, "u1", " Paris", 0, False)
    piece(keys, "u1", " is the", 6, False)
    keys.crash()  # the model stage regenerates the answer from the start, differently
    piece(keys, "u1", " Lyon", 0, False)
    piece(keys, "u1", " is a city", 5, False)
    piece(keys, "u1", ".", 15, True)
    assert keys.sink.read_text() == " Paris is the"
    assert keys.stage.peer.counters["answers_regenerated_differently"] == 1
    assert keys.published("typed")[-1].body.final
    piece(keys, "u2", " Next.", 0, True, by="router")
    assert keys.sink.read_text() == " Paris is the Next."


def test_scratch_that_erases_only_what_reached_the_app(keys):
    """An answer regenerated differently after a crash: the router recorded the answer it
    passed on, keys typed only the first version's beginning. "Scratch that" then erases
    that beginning, not the user's sentence before it."""
    piece(keys, "u1", "Keep this.", 0, True, by="router")
    piece(keys, "u2", " Paris is", 0, False)
    keys.crash()
    piece(keys, "u2", " Lyon is a city.", 0, True)  # diverged: nothing more is typed
    assert keys.sink.read_text() == "Keep this. Paris is"
    router_erases = len(" Paris is") + len(" city.")  # the router's record of u2
    scratch = Keystrokes(text="", backspaces=router_erases, by="router", erases="u2")
    keys.send("router", scratch, utt="u3", key="u3+0")
    assert keys.sink.read_text() == "Keep this."
    assert keys.published("typed")[-1].body.backspaces == len(" Paris is")


def test_a_crash_between_typing_and_acknowledging_types_nothing_twice(keys):
    piece(keys, "u1", "Hello", 0, False)
    piece(keys, "u1", " world.", 5, True)
    keys.crash()  # the router never heard the acknowledgements: it sends both again
    piece(keys, "u1", "Hello", 0, False)
    piece(keys, "u1", " world.", 5, True)
    assert keys.sink.read_text() == "Hello world."
    again = keys.published("typed")[-1].body
    assert (again.text, again.already, again.final) == ("", "Hello world.", True)
    assert len(keys.acks("router")) == 2


def test_a_crash_between_writing_down_and_typing_loses_the_piece_rather_than_doubling_it(keys, monkeypatch):
    class Killed(BaseException):
        pass

    piece(keys, "u1", "Hello", 0, False)

    def killed(*_):
        raise Killed()

    monkeypatch.setattr(keys.stage.sink, "type", killed)
    with pytest.raises(Killed):
        piece(keys, "u1", " world.", 5, True)
    keys.crash()
    piece(keys, "u1", " world.", 5, True)
    assert keys.sink.read_text() == "Hello"


def test_negative_counts_are_refused_on_the_wire():
    from bus.frames import FrameRejected, decode, encode

    parts = encode(Frame(body=Keystrokes(text="x", backspaces=0), src="router"))
    header = parts[1].replace(b"\xaabackspaces\x00", b"\xaabackspaces\xfb")  # 0 -> -5
    with pytest.raises(FrameRejected) as rejected:
        decode([parts[0], header, parts[2]])
    assert rejected.value.reason == "bad_field" and "negative" in rejected.value.detail


# --- vad: what asr has not acknowledged survives a crash ---------------------------


def stream(vad: Harness, samples: np.ndarray, start: int = 0, stop: int | None = None, frame: int = 512, **to) -> None:
    stop = len(samples) if stop is None else stop
    for offset in range(start, stop - frame + 1, frame):
        vad.send(
            "capture",
            AudioChunk(stream="s", offset=offset),
            payload=samples[offset : offset + frame].tobytes(),
            key=str(offset),
            pos=offset + frame,
            **to,
        )


@pytest.fixture(scope="module")
def speech_audio():
    from conftest import AUDIO

    from stages.capture import audio

    return audio.read_all(AUDIO / "session_dictation.wav")


def test_an_utterance_asr_never_acknowledged_is_sent_again_after_a_vad_crash(tmp_path, speech_audio):
    vad = Harness(Vad, tmp_path)
    vad.send("capture", StreamStart(stream="s", live=False), key="start@s", pos=0)
    stream(vad, speech_audio, stop=120_000)
    first = vad.published("speech")
    assert len(first) == 2, "two utterances in the first 7.5 s"
    vad.ack(first[0])
    resume = vad.acks("capture")[-1].body.through
    vad.crash()
    assert [f.utt for f in vad.stage.delivery.pending("asr")] == [first[1].utt], "the unacknowledged one is kept"
    vad.stage.delivery.heard_from("asr")
    assert [f.utt for f in vad.published("speech")] == [first[1].utt]
    resent_from = resume - resume % 512  # capture keeps whole frames
    # live audio capture sent before it knew of the restart: meant for the old process
    stream(vad, speech_audio, start=resent_from + 8 * 512, stop=resent_from + 16 * 512, to_pid=1)
    stream(vad, speech_audio, start=resent_from, stop=len(speech_audio))
    vad.send("capture", StreamStop(stream="s", samples=len(speech_audio)), key="stop@s", pos=len(speech_audio) + 1)
    later = [f.utt for f in vad.published("speech")][1:]
    assert len(later) == 3 and first[1].utt not in later and first[0].utt not in later
    assert vad.stage.progress == VadProgress(stream="s", utterances=5, ended=True)
    assert vad.stage.peer.counters["audio_gaps"] == 0 and vad.stage.peer.counters["meant_for_a_predecessor"] == 8


# --- persisted state that cannot be trusted is set aside --------------------------


@pytest.mark.parametrize(
    "stage_class, bad",
    [
        (Keys, []),
        (Keys, {"u1": {"source": 5}}),
        (Vad, {"recent": 5}),
        (Vad, {"stream": "s", "resume_at": -1, "utterances": 0, "live": True, "ended": False, "outbox": []}),
        (Router, {"typed": 7}),
        (Router, {"mode": "dictate", "typed": [["u", 1]], "decided": {}, "parts": {}}),
    ],
    ids=lambda value: getattr(value, "name", None) or json.dumps(value)[:30],
)
def test_a_malformed_state_file_is_set_aside_and_the_stage_starts_clean(tmp_path, stage_class, bad):
    (tmp_path / f"{stage_class.name}.state.json").write_text(json.dumps(bad))
    harness = Harness(stage_class, tmp_path, f'stages.keys.sink="file:{tmp_path / "typed.txt"}"')
    assert (tmp_path / f"{stage_class.name}.state.json.bad-1").read_text() == json.dumps(bad)
    if stage_class is Router:
        transcript(harness, "u1", "Still typed.")
        assert harness.published("keystrokes")[0].body.text == "Still typed."
    elif stage_class is Keys:
        piece(harness, "u1", "Still typed.", 0, True, by="router")
        assert (tmp_path / "typed.txt").read_text() == "Still typed."
    else:
        assert harness.stage.stream == "" and harness.stage.delivery.pending("asr") == []


def test_nothing_is_handled_before_every_peer_in_the_audience_hears_the_stage(keys):
    """A replay's CLI must hear keys before keys types, or it would miss the reports of
    what was typed: a handshake, not a wait."""
    keys.stage.audience = ["cli"]
    hearing = set()
    keys.stage.peer.hears_me = lambda name: name in hearing
    piece(keys, "u1", "Hello.", 0, True, by="router")
    assert not keys.sink.exists() or keys.sink.read_text() == ""
    hearing.add("cli")
    keys.run()
    assert keys.sink.read_text() == "Hello."


def test_a_restarted_stage_drops_what_was_sent_to_its_predecessor(tmp_path):
    """asr sent u5 to the router process that just died (it had not yet heard of the
    restart); the new router must not take it before the u4 asr will send again."""
    router = Harness(Router, tmp_path)
    late = Frame(body=Transcript(text="Fifth."), src="asr", utt="u5", to="router", to_pid=1, key="u5")
    router.stage.arrive(late)
    router.run()
    assert router.published() == [] and router.stage.peer.counters["meant_for_a_predecessor"] == 1
    transcript(router, "u4", "Fourth.")
    transcript(router, "u5", "Fifth.")
    assert [f.utt for f in router.published("keystrokes")] == ["u4"]
