"""The indicator's fold (voxkey/indicator.py): frames and links in, states out. Following
a real voxkey is tested in tests/test_status_follow.py and tests/test_tray.py."""

import json

from bus.frames import Frame, Heartbeat, Keystrokes, Request, Typed
from bus.wiring import STAGES
from voxkey.indicator import NOT_RUNNING, STALE_NS, Indicator, Seen, stopped

SECOND = 1_000_000_000


def beat(stage: str, ready: bool = True, pid: int = 10, **progress) -> Frame:
    return Frame(Heartbeat(ready=ready, pid=pid, progress=progress), stage)


def running(**progress_of_stage) -> Seen:
    """Every stage ready; listening, dictating, typing with wtype, unless said otherwise."""
    seen = Seen()
    said = {
        "capture": {"listening": True},
        "router": {"mode": "dictate"},
        "keys": {"sink": "wtype", "reason": "Wayland session"},
        **progress_of_stage,
    }
    for stage in STAGES:
        seen.on_frame(beat(stage, **said.get(stage, {})), 0)
    return seen


def states(seen: Seen, frames: list[Frame], at_ns: int = 0) -> list[str]:
    out = []
    for frame in frames:
        seen.on_frame(frame, at_ns)
        out.append(seen.indicator(at_ns).state)
    return out


def test_loading_until_every_stage_is_ready_then_listening():
    seen = Seen()
    assert seen.indicator(0).state == "loading"  # no link known yet: not "stopped"
    for stage in STAGES[:-1]:
        seen.on_frame(beat(stage, **({"listening": True} if stage == "capture" else {})), 0)
    loading = seen.indicator(0)
    assert loading.state == "loading" and "6 of 7 stages ready, waiting for keys" in loading.tooltip
    seen.on_frame(beat("keys", sink="wtype"), 0)
    ready = seen.indicator(0)
    assert (ready.state, ready.listening, ready.sink) == ("listening", True, "wtype")


def test_paused_and_resumed_by_captures_progress():
    seen = running()
    assert states(seen, [beat("capture", listening=False), beat("capture", listening=True)]) == ["paused", "listening"]
    assert running(capture={"listening": False}).indicator(0).listening is False


def test_hearing_while_vad_is_inside_speech():
    seen = running()
    assert states(seen, [beat("vad", speaking=True), beat("vad", speaking=False)]) == ["hearing", "listening"]


def test_an_answer_is_thinking_until_its_keystrokes_reach_keys_then_typing_until_typed_to_its_end():
    seen = running(router={"mode": "chat"})
    frames = [
        Frame(Request(mode="chat", text="what is a haiku"), "router", utt="u1"),
        Frame(Keystrokes(text="A", final=False, by="instruct"), "instruct", utt="u1"),  # model -> router: not yet
        Frame(Keystrokes(text="A", final=False, by="instruct"), "router", utt="u1"),
        Frame(Typed(text="A", final=False, by="instruct"), "keys", utt="u1"),
        Frame(Typed(text=" haiku.", final=True, by="instruct", offset=1), "keys", utt="u1"),
    ]
    assert states(seen, frames) == ["thinking", "thinking", "typing", "typing", "listening"]
    seen.on_frame(Frame(Request(mode="converse", text="plan my day"), "router", utt="u2"), 0)
    assert "thinking is answering" in seen.indicator(0).tooltip  # converse is the thinking stage's


def test_an_answer_whose_end_was_lost_is_forgotten():
    seen = running()
    seen.on_frame(Frame(Request(mode="chat", text="hi"), "router", utt="u1"), 0)
    assert seen.indicator(STALE_NS - 1).state == "thinking"
    assert seen.indicator(STALE_NS + 1).state == "listening"


def test_dictation_is_typing_between_the_routers_keystrokes_and_keys_report():
    seen = running()
    frames = [
        Frame(Keystrokes(text="Hello.", by="router"), "router", utt="u1"),
        Frame(Typed(text="Hello.", by="router"), "keys", utt="u1"),
    ]
    assert states(seen, frames) == ["typing", "listening"]


def test_typing_wins_over_paused_and_paused_over_hearing():
    seen = running()
    assert states(seen, [beat("vad", speaking=True), beat("capture", listening=False)]) == ["hearing", "paused"]
    seen.on_frame(Frame(Keystrokes(text="Hi.", by="router"), "router", utt="u1"), 0)
    typing = seen.indicator(0)
    assert (typing.state, typing.listening) == ("typing", False)


def test_errors_name_what_went_wrong_and_clear_with_the_next_utterance_typed():
    seen = running()
    seen.on_frame(
        Frame(Typed(text="", error="wtype: compositor does not support it", by="router"), "keys", utt="u1"), 0
    )
    failed = seen.indicator(0)
    assert failed.state == "error" and "typing failed: wtype: compositor" in failed.error
    seen.on_frame(Frame(Typed(text="Fine.", by="router"), "keys", utt="u2"), 0)
    assert seen.indicator(0).state == "listening" and seen.indicator(0).error == ""
    seen.on_frame(beat("vad", refusing="downstream stalled"), 0)
    assert seen.indicator(0).error == "speech refused: downstream stalled"


def test_a_stage_gone_after_loading_is_an_error_and_every_stage_gone_is_stopped():
    seen = running()
    seen.on_link("asr", False)
    gone = seen.indicator(0)
    assert gone.state == "error" and gone.error == "asr not ready (restarting?)"
    seen.on_frame(beat("asr", pid=11), 0)  # back, under a new pid
    assert seen.indicator(0).state == "listening"
    for stage in STAGES:
        seen.on_link(stage, False)
    assert seen.indicator(0) == stopped()
    assert seen.settled and seen.gone


def test_links_are_settled_once_every_stages_is_known():
    seen = Seen()
    for stage in STAGES[:-1]:
        seen.on_link(stage, False)  # the sockets a stopped voxkey left refuse, one by one
    assert not seen.settled and not seen.gone
    seen.on_frame(beat(STAGES[-1], ready=False), 0)
    assert seen.settled and not seen.gone
    assert stopped().tooltip == NOT_RUNNING and "voxkey up" in NOT_RUNNING


def test_held_speech_and_the_hotkey_problem_are_in_the_tooltip():
    seen = running(keys={"sink": "wtype", "held": 1, "held_said_ns": 0}, capture={"listening": True, "hotkey": "F9?"})
    shown = seen.indicator(14 * SECOND)
    assert shown.held == 1 and "1 utterance held: said 14 s ago" in shown.tooltip and "F9?" in shown.tooltip


def test_the_json_form_has_the_indicators_fields_and_waybars_keys():
    shown = Indicator("listening", listening=True, mode="dictate", sink="wtype", tooltip="voxkey is listening")
    form = json.loads(json.dumps(shown.as_json()))
    assert set(form) == {"state", "listening", "mode", "sink", "tooltip", "error", "held", "text", "class", "alt"}
    assert (form["text"], form["class"], form["alt"]) == ("listening · dictate", "listening", "listening")
    assert Indicator("paused", mode="dictate").text == "paused"
