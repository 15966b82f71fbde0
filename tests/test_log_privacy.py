"""What the user said stays out of what is written down -- the stages' logs and `voxkey
up`'s output when it is not a terminal (the journal, under the service) -- unless
`log.user_text` asks for it. On a terminal `voxkey up` still shows it."""

import io
import json
import re
import shutil
from pathlib import Path

import structlog
from conftest import AUDIO, voxkey
from test_status import STAGES, Terminal, beat, typed

from bus import log
from voxkey.up import LiveView

# jfk.flac as one utterance at real time, recognised as it goes: asr logs partials, the router the
# words it typed ahead, as well as the transcript and what it routed.
AS_IT_GOES = ["--set", "stages.vad.end_of_speech_ms=1500", "--set", "stages.vad.partial_every_ms=1000", "--realtime"]


def test_the_user_text_fields_are_replaced_by_their_length():
    event = {"event": "transcript", "utt": "u1", "text": "Ask not.", "raw": " Ask not", "new": "not", "dropped": ""}
    assert log.withhold_user_text(None, "info", dict(event)) == {
        **event,
        "text": "<8 chars>",
        "raw": "<8 chars>",
        "new": "<3 chars>",
    }
    assert log.withhold_user_text(None, "info", {"event": "x", "text": ["a"]})["text"] == "<withheld>"


def test_a_stage_logger_writes_the_words_only_when_asked(capsys):
    try:
        for user_text, shown in ((False, "<12 chars>"), (True, "Hello there.")):
            log.setup("router", user_text=user_text).info("routed", utt="u1", mode="dictate", text="Hello there.")
            [line] = capsys.readouterr().err.splitlines()
            assert {key: json.loads(line)[key] for key in ("stage", "event", "mode", "text")} == {
                "stage": "router",
                "event": "routed",
                "mode": "dictate",
                "text": shown,
            }
    finally:
        structlog.reset_defaults()  # this process's other tests log as before


def replay_logs(*settings: str) -> tuple[str, dict[str, str]]:
    """What a real replay of jfk.flac typed, and every log it left (--keep)."""
    result = voxkey("replay", AUDIO / "jfk.flac", *AS_IT_GOES, "--keep", *settings)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = Path(re.search(r"logs kept in (\S+)", result.stderr)[1])
    logs = {path.name: path.read_text() for path in run_dir.glob("*.log")}
    shutil.rmtree(run_dir)
    assert {f"{stage}.log" for stage in STAGES} <= set(logs), sorted(logs)
    return result.stdout, logs


def events(text: str, name: str) -> list[dict]:
    logged = (json.loads(line) for line in text.splitlines() if line.startswith("{"))
    return [event for event in logged if event["event"] == name]


def test_a_replay_logs_none_of_the_words_said_unless_asked():
    typed, logs = replay_logs()
    # Words no log would hold otherwise ("what" is in messages): "fellow", "americans", "country".
    said = {word for word in re.findall(r"[a-z]+", typed.lower()) if len(word) >= 6}
    assert len(said) >= 3, typed
    written = "\n".join(logs.values()).lower()
    assert not [word for word in said if word in written]
    [transcript] = events(logs["asr.log"], "transcript")
    assert re.fullmatch(r"<\d+ chars>", transcript["text"]) and re.fullmatch(r"<\d+ chars>", transcript["raw"])
    assert events(logs["asr.log"], "partial") and events(logs["router.log"], "typed ahead")  # those were logged too

    typed, logs = replay_logs("--set", "log.user_text=true")
    [transcript] = events(logs["asr.log"], "transcript")
    assert transcript["text"] == typed.strip()  # what was recognised is what was typed, here
    [routed] = events(logs["router.log"], "routed")
    assert routed["text"].strip() and routed["text"] in typed
    assert all(event["new"] and event["new"] in typed for event in events(logs["asr.log"], "partial"))


def live_view_output(stream, **kwargs) -> str:
    view = LiveView(stream, desktop=False, **kwargs)
    for stage in STAGES:
        view.live.on_frame(beat(stage))
    view.show(view.live.on_frame(typed("u1", "Hello", final=False, speech_end=1_000_000_000, first_key=2_250_000_000)))
    view.show(view.live.on_frame(typed("u1", " there.", offset=5)))
    view.close()
    return stream.getvalue()


def test_up_tells_the_journal_how_much_was_typed_and_a_terminal_what():
    assert live_view_output(io.StringIO()) == "voxkey: typed by router 1250 ms after speech ended: 12 characters\n"
    quoted = 'voxkey: typed by router 1250 ms after speech ended: "Hello there."\n'
    assert live_view_output(io.StringIO(), user_text=True) == quoted
    on_screen = live_view_output(Terminal())
    assert '\r\x1b[Kvoxkey: typed by router 1250 ms after speech ended: "Hello there."\n' in on_screen
