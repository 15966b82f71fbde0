"""Dictate mode's text decisions, as pure functions."""

from stages.router.dictation import Dictation, Edit, join_to
from stages.router.language import command_of


def type_all(dictation: Dictation, utterances: list[str]) -> str:
    document = ""
    for said in utterances:
        edit = dictation.hear(said)
        document = document[: len(document) - edit.backspaces] + edit.text
    return document


def test_the_session_types_what_the_manifest_says():
    said = [
        "Please send the quarterly report to Maria before Friday afternoon.",
        "New line.",
        "The meeting has moved to Thursday at 3.30.",
        "Scratch that.",
        "Please send the quarterly report to Maria before Friday afternoon.",
    ]
    sentence = "Please send the quarterly report to Maria before Friday afternoon."
    expected = f"{sentence}\n{sentence}"
    assert type_all(Dictation(), said) == expected


def test_consecutive_utterances_are_spaced_and_cased():
    assert type_all(Dictation(), ["Hello there.", "How are you?"]) == "Hello there. How are you?"
    assert type_all(Dictation(), ["and so my fellow Americans,", "Ask not."]) == "And so my fellow Americans, ask not."
    assert type_all(Dictation(), ["so", "I think so."]) == "So I think so."


def test_commands_tolerate_what_whisper_writes():
    assert command_of("New line.") == command_of("newline") == command_of(" new line ") == "new line"
    assert type_all(Dictation(), ["One.", "New paragraph.", "two."]) == "One.\n\nTwo."


def test_scratch_that_erases_only_the_previous_utterance():
    dictation = Dictation()
    assert type_all(dictation, ["Keep this.", "Drop this.", "Scratch that."]) == "Keep this."
    edit = dictation.hear("Scratch that.")
    assert edit.backspaces == len("Keep this.")
    assert dictation.hear("Scratch that.").backspaces == 0  # nothing left to erase


def test_join_to_uses_unicode_characters_unchanged():
    assert join_to("Café.", "über ✓") == " Über ✓"


def test_an_answer_acknowledged_again_after_a_keys_restart_is_recorded_once():
    from bus.frames import Typed

    document = Dictation()
    document.hear("Hello there.", utt="a")
    for ack in (
        Typed(text=" Paris", by="instruct"),
        Typed(text="", offset=6, already=" Paris", by="instruct"),
        Typed(text=".", offset=6, already=" Paris", by="instruct"),
    ):
        document.record("b", ack.unseen(document.text_of("b")))
    assert document.typed == [("a", "Hello there."), ("b", " Paris.")]
    assert document.text_of("missing") == ""


def test_scratch_that_names_the_utterance_it_erases():
    dictation = Dictation()
    dictation.hear("Keep this.", "u1")
    dictation.hear("Not this.", "u2")
    assert dictation.hear("Scratch that.", "u3") == Edit(len(" Not this."), "", erases="u2")
    assert dictation.hear("Scratch that.", "u4") == Edit(len("Keep this."), "", erases="u1")
    assert dictation.hear("Scratch that.", "u5") == Edit(0, "", erases="")  # nothing left to erase
