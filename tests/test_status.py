"""What voxkey shows its user: `voxkey status`, the live view of `voxkey up`, and what
the stages report for them (router: the mode and what it heard; keys: the backend and
what it typed). Replacements in dictation are here too: they are what the user sees
typed for what they said."""

import io
import os
import time

from harness import Harness

from bus.control import StageStatus
from bus.frames import Frame, Heartbeat, Keystrokes, Transcript, Typed, now_ns
from stages.keys.stage import Keys
from stages.router.dictation import replace_phrases, vocabulary
from stages.router.stage import Router
from voxkey.status import Event, Live, notify, render
from voxkey.up import LiveView

STAGES = ("capture", "vad", "asr", "router", "instruct", "thinking", "keys")


def beat(stage: str, ready: bool = True, pid: int = 10, **progress) -> Frame:
    return Frame(Heartbeat(ready=ready, pid=pid, progress=progress), stage)


def typed(
    utt: str,
    text: str,
    final: bool = True,
    error: str = "",
    offset: int = 0,
    already: str = "",
    in_doubt: int = 0,
    **marks,
) -> Frame:
    return Frame(
        Typed(text=text, final=final, error=error, by="router", offset=offset, already=already, in_doubt=in_doubt),
        "keys",
        utt=utt,
        marks=marks,
    )


def test_the_live_view_tells_readiness_listening_mode_and_what_was_typed():
    live = Live()
    messages = []
    for stage in STAGES[:-1]:
        messages += [e.message for e in live.on_frame(beat(stage))]
    assert messages == [f"loading: {n} of 7 stages ready, waiting for {', '.join(STAGES[n:])}" for n in range(1, 7)], (
        "loading told stage by stage, not ready before every stage is"
    )
    assert live.line().startswith("voxkey: loading (6/7 ready)")
    events = live.on_frame(beat("keys", sink="wtype", reason="Wayland session"))
    assert [e.message for e in events] == ["ready: speak, and it is typed", "typing with wtype: Wayland session"]
    [listening] = live.on_frame(beat("capture", listening=True))  # said only now: everything is loaded
    [mode] = live.on_frame(beat("router", mode="dictate"))
    assert (listening.message, mode.message, mode.desktop) == ("listening", "mode: dictate", False)
    [switched] = live.on_frame(beat("router", mode="clarify"))
    assert switched.message == "mode: clarify" and switched.desktop  # a change is worth a notification
    assert live.on_frame(beat("router", mode="clarify")) == []  # every second, the same: no news

    live.on_frame(Frame(Transcript("Hello there."), "asr", utt="u1"))
    assert live.on_frame(typed("u1", "Hello", final=False, speech_end=1_000_000_000, first_key=2_250_000_000)) == []
    [done] = live.on_frame(typed("u1", " there.", offset=5))
    assert done.message == 'typed by router 1250 ms after speech ended: "Hello there."'
    # A report repeated after a restart adds nothing.
    live.on_frame(typed("u1", " there.", offset=5, already="Hello"))
    assert live.line() == 'voxkey: listening | clarify | wtype | heard "Hello there." | typed 12 chars in 1.2 s'

    [failed] = live.on_frame(typed("u2", "", error="wtype: compositor does not support virtual keyboard"))
    assert failed.desktop and "typing failed: wtype" in failed.message
    assert "ERROR wtype" in live.line()
    [lost] = live.on_frame(beat("asr", ready=False, pid=11))
    assert lost.message.startswith("asr is not ready")
    [back] = live.on_frame(beat("asr", pid=11))
    assert back.message.startswith("ready")


def test_status_renders_each_stage_and_the_last_utterance():
    stages = {
        "capture": StageStatus("streaming", True, 1, {"listening": True, "held": True}),
        "router": StageStatus(
            "dictate",
            True,
            2,
            {"mode": "dictate", "heard_utt": "u1", "heard_text": "Please send it.", "heard_mode": "dictate"},
        ),
        "keys": StageStatus(
            "xdotool",
            True,
            3,
            {
                "sink": "xdotool",
                "reason": "X11 session",
                "last_utt": "u1",
                "last_typed": "Please send it.",
                "last_by": "router",
                "last_latency_ms": 980,
                "last_error": "",
            },
        ),
        "asr": "stage asr did not answer in 1 s",
    }
    processes = {"capture": {"statename": "RUNNING", "pid": 1}, "asr": {"statename": "BACKOFF", "pid": 0}}
    shown = render(stages, processes)
    assert "listening: on (held)" in shown and "mode:      dictate" in shown
    assert "typing:    xdotool (X11 session)" in shown
    assert 'heard:     "Please send it." (dictate)' in shown
    assert 'typed:     "Please send it." (by router, 980 ms after speech ended)' in shown
    asr_line = next(line for line in shown.splitlines() if line.strip().startswith("asr"))
    assert "BACKOFF" in asr_line and "did not answer" in asr_line
    vad_line = next(line for line in shown.splitlines() if line.strip().startswith("vad"))
    assert "not running" in vad_line


def test_replacements_type_what_the_user_means():
    words = vocabulary(
        {"at sign": "@", "dot com": ".com", "kubernetes": "Kubernetes", "vox key": "voxkey", "hash tag": "#"}
    )
    assert replace_phrases("Mail Anna at sign example dot com.", words) == "Mail Anna@example.com."
    assert replace_phrases("Find at-sign and at, sign here", words) == "Find@and@here"  # as Whisper may write it
    assert replace_phrases("Deploy to kubernetes with Vox key.", words) == "Deploy to Kubernetes with voxkey."
    assert replace_phrases("The hash tag release", words) == "The #release"
    assert replace_phrases("a sign at the door", words) == "a sign at the door"  # whole phrases only


def test_the_router_applies_replacements_to_dictation_only_and_reports_what_it_heard(tmp_path):
    router = Harness(Router, tmp_path, 'stages.router.replacements={"at sign" = "@", "dot com" = ".com"}')
    router.send("asr", Transcript("Write to anna at sign example dot com."), utt="u1", reliable=True)
    [strokes] = router.published("keystrokes")
    assert strokes.body.text == "Write to anna@example.com."
    status = router.stage.on_control("status", {})["progress"]
    assert (status["mode"], status["heard_text"], status["heard_mode"]) == (
        "dictate",
        "Write to anna at sign example dot com.",
        "dictate",
    )
    router.ack(strokes)
    router.send("asr", Transcript("", dropped="no speech"), utt="u2", reliable=True)
    assert router.stage.on_control("status", {})["progress"]["heard_dropped"] == "no speech"
    router.ack(*router.published("keystrokes")[1:])
    router.send("asr", Transcript("Clarify. Mail anna at sign example dot com."), utt="u3", reliable=True)
    [request] = router.published("request")
    assert request.body.text == "Mail anna at sign example dot com."  # the model hears what was said


def test_keys_reports_its_backend_and_the_last_utterance_typed(tmp_path):
    document = tmp_path / "doc.txt"
    keys = Harness(Keys, tmp_path, f'stages.keys.sink="file:{document}"')
    speech_end = now_ns() - 1_000_000_000  # said a second ago: typed, not held
    marks = {"speech_end": speech_end}
    keys.send("router", Keystrokes("Hello", final=False), utt="u1", key="u1+0", reliable=True, marks=marks)
    keys.send("router", Keystrokes(" world.", offset=5), utt="u1", key="u1+5", reliable=True, marks=marks)
    status = keys.stage.on_control("status", {})["progress"]
    assert status["sink"] == "file" and status["last_typed"] == "Hello world." and status["last_utt"] == "u1"
    first_key = keys.published("typed")[0].marks["first_key"]
    assert status["last_latency_ms"] == round((first_key - speech_end) / 1e6)  # to its first key, not a later piece's
    assert document.read_text() == "Hello world."


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_up_keeps_a_status_line_under_its_events_in_a_terminal_and_plain_lines_elsewhere():
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        view = LiveView(stream, desktop=False)
        for stage in STAGES:  # loaded: what loading said is not shown here
            view.live.on_frame(beat(stage))
        view.show(view.live.on_frame(beat("capture", listening=False)))
        view.close()
    assert log.getvalue() == "voxkey: not listening\n"
    shown = terminal.getvalue()
    assert shown.startswith("\r\x1b[Kvoxkey: not listening\n\r\x1b[Kvoxkey: paused | ? | ?")
    assert shown.endswith("\r\x1b[K")  # the status line is cleared on the way out


def test_notifications_go_through_notify_send(tmp_path, monkeypatch):
    """A stand-in notify-send records its arguments: no notification daemon runs here."""
    record = tmp_path / "notified"
    tool = tmp_path / "notify-send"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}.part && mv {record}.part {record}\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    view = LiveView(io.StringIO(), desktop=True)
    view.show([Event("mode: chat", desktop=True), Event("listening")])
    deadline = time.monotonic() + 10
    while not record.exists():
        assert time.monotonic() < deadline, "notify-send was run"
        time.sleep(0.05)
    assert record.read_text().splitlines() == ["--app-name=voxkey", "--urgency=normal", "voxkey", "mode: chat"]
    monkeypatch.setenv("PATH", "/nonexistent")
    assert notify("no tool") is False


def test_listening_is_not_claimed_before_everything_is_loaded():
    live = Live()
    assert [e.message for e in live.on_frame(beat("capture", ready=False, listening=False))] == []
    said = [e.message for stage in STAGES for e in live.on_frame(beat(stage))]
    assert said[-2:] == ["ready: speak, and it is typed", "not listening: voxkey listen on (or the hotkey) starts"]


def test_any_failure_of_a_sink_is_reported_in_typed_with_its_reason(tmp_path):
    """Not only a SinkError: a file sink whose folder is gone fails with an OSError, and
    the user still hears that typing failed (typed.error, the live view)."""
    folder = tmp_path / "documents"
    folder.mkdir()
    keys = Harness(Keys, tmp_path, f'stages.keys.sink="file:{folder / "doc.txt"}"')
    (folder / "doc.txt").unlink()
    folder.rmdir()  # the disk is gone from under the sink
    keys.send("router", Keystrokes("Hello."), utt="u1", key="u1+0", reliable=True)
    [typed] = keys.published("typed")
    assert typed.body.error.startswith("the file sink failed: FileNotFoundError:"), typed.body.error
    assert (typed.body.text, typed.body.final) == ("", True)  # nothing is counted as typed
    [shown] = Live().on_frame(typed)
    assert shown.message.startswith("typing failed: the file sink failed") and shown.desktop


def test_status_shows_what_keys_holds_and_the_next_utterances_mode():
    now = 100 * 10**9
    router = {"mode": "dictate", "next_mode": "chat", "next_mode_until_ns": now + 6 * 10**9}
    keys = {"sink": "file", "held": 1, "held_said_ns": now - 14 * 10**9, "held_reason": "said 14 s ago"}
    stages = {"router": StageStatus("dictate", True, 2, router), "keys": StageStatus("file", True, 3, keys)}
    shown = render(stages, {}, now_ns=now).splitlines()
    assert shown[1:5] == [
        "mode:      dictate",
        "next utterance: chat (for 6 s)",
        "typing:    file",
        "1 utterance held: said 14 s ago -- `voxkey held type` or `voxkey held copy`",
    ]
    later = render(stages, {}, now_ns=now + 7 * 10**9)
    assert "next utterance" not in later  # expired: the next utterance is dictated again
    two = {**keys, "held": 2, "held_said_ns": now - 40 * 10**9}
    shown = render({**stages, "keys": StageStatus("file", True, 3, two)}, {}, now_ns=now)
    assert "2 utterances held: the first said 40 s ago" in shown


def test_the_live_view_tells_at_once_of_held_speech_the_next_mode_and_text_in_doubt():
    live = Live()
    for stage in STAGES:
        live.on_frame(beat(stage))
    until = now_ns() + 6 * 10**9
    events = live.on_frame(beat("router", mode="dictate", next_mode="chat", next_mode_until_ns=until))
    assert events[-1].message.startswith("next utterance: chat (for ")
    assert live.on_frame(beat("router", mode="dictate", next_mode="chat", next_mode_until_ns=until)) == []
    assert "next utterance: chat (for 6 s)" in live.line(now_ns=until - 6 * 10**9)
    assert "next utterance" not in live.line(now_ns=until)

    said = now_ns() - 14 * 10**9
    [news] = live.on_frame(beat("keys", sink="file", held=1, held_said_ns=said))[-1:]
    assert news.desktop and news.urgent and news.message.startswith("1 utterance held: said 1")
    assert news.message.endswith("-- `voxkey held type` or `voxkey held copy`")
    assert live.on_frame(beat("keys", sink="file", held=1, held_said_ns=said)) == []  # no news
    assert "1 HELD" in live.line()
    [more] = live.on_frame(beat("keys", sink="file", held=2, held_said_ns=said))
    assert more.message.startswith("2 utterances held: the first said")
    assert live.on_frame(beat("keys", sink="file", held=0)) == [] and "HELD" not in live.line()

    [doubt] = live.on_frame(typed("u9", " the rest.", offset=64, already="x" * 64, in_doubt=64))
    assert doubt.urgent and "64 characters of it may be missing" in doubt.message


def test_status_and_the_live_view_say_when_vad_refuses_new_speech():
    stalled = "downstream stalled: 180 s of speech wait for asr"
    stages = {"vad": StageStatus("refusing speech: downstream stalled", True, 4, {"refusing": stalled})}
    assert f"speech:    REFUSED -- {stalled}" in render(stages, {}, now_ns=10**9).splitlines()
    live = Live()
    for stage in STAGES:
        live.on_frame(beat(stage))
    [refused] = live.on_frame(beat("vad", refusing=stalled))
    assert refused.urgent and refused.desktop and refused.message == f"speech refused: {stalled}"
    assert live.on_frame(beat("vad", refusing=stalled)) == []  # no news
    [taken] = live.on_frame(beat("vad", utterances=3))
    assert taken.message == "speech taken again" and not taken.urgent
