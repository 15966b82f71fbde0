"""Conversations: chat and converse answer a follow-up in context."""

from bus.frames import Transcript
from stages.router import Router, decide

from harness import Harness

CAPITAL = "What is the capital of France?"


def test_new_conversation_is_a_spoken_command_and_a_control_command(tmp_path):
    assert decide("New conversation.", "chat", {}, set()).new_conversation
    assert decide(" start a new conversation", "converse", {}, set()).new_conversation
    assert not decide("A new conversation began.", "dictate", {}, set()).new_conversation
    router = Harness(Router, tmp_path, "stages.router.mode=chat")
    router.send("asr", Transcript(text="New conversation."), utt="u1", reliable=True)
    [nothing] = router.published("keystrokes")
    assert nothing.body.text == ""
    router.ack(nothing)
    assert router.stage.on_control("new-conversation", {}) == "new conversation (2)"
    router.crash()
    router.send("asr", Transcript(text=CAPITAL), utt="u2", reliable=True)
    [request] = router.published("request")
    assert (request.body.mode, request.body.conversation) == ("chat", 2)
