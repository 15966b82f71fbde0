"""The router in German, French and Spanish: commands, stop words, mode names, switches and
replacements from the language tables (stages/router/languages/), read with the language
asr heard; pure, then frames in and frames out. The phrases are the fixtures' texts
(tests/audio/languages) as a speaker says them and as Whisper base writes them."""

import pytest

from bus.delivery import piece_key
from bus.frames import Keystrokes, Transcript
from bus.stage import StageError
from stages.router.dictation import Dictation, join_to, vocabularies
from stages.router.language import ACTIONS, ENGLISH, command_of, hearing, known, language
from stages.router.meaning import Decision, decide, plainly_dictated
from stages.router.modewords import MODES
from stages.router.stage import Router
from tests.harness import Harness

APART = [400, 0, 0]  # asr's word timings: a pause after the first word


def decided(text: str, code: str, sticky: str = "dictate", **kw) -> Decision:
    return decide(text, sticky, {}, set(), languages=hearing(code), **kw)


@pytest.mark.parametrize("code", known())
def test_every_table_says_every_command_mode_and_stop(code):
    lang = language(code)
    assert lang.code == code
    assert set(lang.commands.values()) == set(ACTIONS), f"{code}.toml lacks a command"
    assert all(lang.names(mode) for mode in MODES), f"{code}.toml lacks a mode's name"
    assert lang.stop_words and lang.switch.verbs and lang.switch.mode_word


def test_a_language_without_a_table_is_heard_in_english_and_typed_as_said():
    assert language("ja").code == "en" and hearing("ja") == ENGLISH == hearing("")
    assert language("de-AT").code == language("DE_ch").code == "de"
    assert decided("新しい行。", "ja") == Decision("dictate", "新しい行。")


@pytest.mark.parametrize(
    ("code", "said", "action"),
    [
        ("de", "Neue Zeile.", "new line"),
        ("de", "Neuer Absatz.", "new paragraph"),
        ("de", "Lösch das!", "scratch that"),
        ("fr", "Nouvelle ligne.", "new line"),
        ("fr", "À la ligne.", "new line"),
        ("fr", "Nouveau paragraphe.", "new paragraph"),
        ("fr", "Efface ça.", "scratch that"),
        ("es", "Nueva línea.", "new line"),
        ("es", "Nuevo párrafo.", "new paragraph"),
        ("es", "Borra eso.", "scratch that"),
        ("de", "New line.", "new line"),  # voxkey's own words are heard in every language
    ],
)
def test_commands_are_heard_in_the_language_spoken(code, said, action):
    assert command_of(said, hearing(code)) == action


def test_a_command_of_one_language_is_text_in_another():
    assert command_of("Neue Zeile.", hearing("fr")) == ""
    assert command_of("Neue Zeile.", ENGLISH) == ""
    assert decided("Nouvelle ligne.", "en") == Decision("dictate", "Nouvelle ligne.")


@pytest.mark.parametrize(
    ("code", "said", "mode"),
    [
        ("de", "Chat. Was ist die Hauptstadt von Frankreich?", "chat"),
        ("de", "Gespräch. Wie viel ist siebzehn mal drei?", "converse"),
        ("fr", "Discussion. Quelle est la capitale de l'Espagne ?", "chat"),
        ("fr", "Conversation. Combien font douze fois trois ?", "converse"),
        ("es", "Charla. ¿Cuál es la capital de Italia?", "chat"),
        ("es", "Conversación. ¿Cuánto es quince por cuatro?", "converse"),
    ],
)
def test_a_mode_prefix_in_the_language_spoken(code, said, mode):
    decision = decided(said, code, pauses_ms=APART)
    assert decision.mode == mode
    assert decision.text == said.split(" ", 1)[1]  # the rest as said, its first letter a capital


def test_a_prefix_said_straight_on_stays_dictation():
    said = "Gespräch mit Maria morgen früh."
    assert decided(said, "de", pauses_ms=[0, 0, 0]) == Decision("dictate", said)


@pytest.mark.parametrize(
    ("code", "said", "mode"),
    [
        ("de", "Wechsle zum Diktat.", "dictate"),
        ("de", "Bitte schalte in den Chatmodus.", "chat"),
        ("de", "Geh zum Diktiermodus.", "dictate"),
        ("fr", "Passe en mode dictée.", "dictate"),
        ("fr", "S'il te plaît, passe en mode discussion.", "chat"),
        ("es", "Cambia al modo dictado.", "dictate"),
        ("es", "Por favor, vuelve al modo charla.", "chat"),
        ("fr", "Switch to chat mode.", "chat"),
    ],
)
def test_a_switch_said_the_languages_way(code, said, mode):
    assert decided(said, code, sticky="clarify").sticky == mode


def test_a_switch_verb_in_a_sentence_is_text():
    said = "Passe le sel, s'il te plaît."
    assert decided(said, "fr") == Decision("dictate", said)


@pytest.mark.parametrize(("code", "said"), [("de", "Abbrechen."), ("fr", "Arrête !"), ("es", "Alto."), ("es", "Stop.")])
def test_stop_words_of_the_language_stop_an_answer_and_are_typed_with_none(code, said):
    assert decided(said, code, stopping=True).stop
    assert decided(said, code) == Decision("dictate", said)
    assert decided(said, code, sticky="chat").stop


@pytest.mark.parametrize(
    ("code", "said"), [("de", "Neues Gespräch."), ("fr", "Nouvelle conversation."), ("es", "Nueva conversación.")]
)
def test_new_conversation_in_the_language_spoken(code, said):
    assert decided(said, code, sticky="chat").new_conversation


def test_partials_wait_while_words_may_become_a_command_of_the_language():
    de = hearing("de")
    assert not plainly_dictated("Lösch das bitte", {}, set(), de)  # "Lösch das" may end it
    assert not plainly_dictated("Wechsle zum Chat", {}, set(), de)
    assert plainly_dictated("Wir treffen uns morgen", {}, set(), de)
    assert plainly_dictated("Nouvelle ligne de métro", {}, set(), ENGLISH)  # not a command in English


def test_german_keeps_the_capital_of_a_noun_in_mid_sentence_french_does_not():
    assert join_to("Wir treffen uns", "Morgen im Büro.", hearing("de")) == " Morgen im Büro."
    assert join_to("Nous avons", "Une réunion.", hearing("fr")) == " une réunion."
    assert join_to("Hecho.", "¿cuál es?", hearing("es")) == " ¿Cuál es?"


def test_dictation_types_commands_of_the_language():
    document, de = Dictation(), hearing("de")
    typed = [
        document.hear(said, f"u{i}", de)
        for i, said in enumerate(["Erster Punkt.", "Neue Zeile.", "Falsch.", "Lösch das."])
    ]
    assert [edit.text for edit in typed[:3]] == ["Erster Punkt.", "\n", "Falsch."]
    assert (typed[3].backspaces, typed[3].erases) == (len("Falsch."), "u2")  # at the start of a line


def test_replacements_for_one_language_add_to_and_win_over_those_for_every_language():
    words = vocabularies({"dot com": ".com", "voxkey": "VoxKey", "de": {"Punkt com": ".com", "voxkey": "Voxkey"}})
    document = Dictation(words=words)
    assert document.hear("Schreib an voxkey Punkt com", "u1", hearing("de")).text == "Schreib an Voxkey.com"
    assert document.hear("and voxkey dot com", "u2", hearing("en")).text == " and VoxKey.com"
    assert document.hear("voxkey Punkt com", "u3", hearing("fr")).text == " VoxKey Punkt com"


def test_a_replacement_table_that_is_not_text_is_a_clear_error():
    with pytest.raises(StageError, match=r"fix \[stages.router.replacements.de\]"):
        vocabularies({"de": {"Punkt": 1}})


def test_the_router_reads_each_transcript_in_its_language_and_asks_in_it(tmp_path):
    """Frames in, frames out: a German command, a French prefix, a Spanish switch."""
    router = Harness(Router, tmp_path)
    typed = []
    for utt, said in (("u1", "Wir treffen uns morgen."), ("u2", "Neue Zeile.")):
        router.send("asr", Transcript(said, language="de"), utt=utt, reliable=True)
        [keystrokes] = router.published("keystrokes")
        typed.append(keystrokes.body.text)
        router.ack(keystrokes)  # keys typed it: the next transcript is taken
        router.clear()
    assert typed == ["Wir treffen uns morgen.", "\n"]
    said = "Discussion. Quelle est la capitale de l'Espagne ?"
    router.send("asr", Transcript(said, pauses_ms=APART, language="fr"), utt="u3", reliable=True)
    [asked] = router.published("request")
    assert (asked.body.mode, asked.body.text, asked.body.language) == (
        "chat",
        "Quelle est la capitale de l'Espagne ?",
        "fr",
    )
    answer = Keystrokes(text="Madrid.", final=True)  # the model's whole answer, which keys types
    router.send("instruct", answer, utt="u3", key=piece_key("u3", 0), reliable=True)
    router.ack(asked, *router.published("keystrokes"))
    router.send("asr", Transcript("Cambia al modo charla.", language="es"), utt="u4", reliable=True)
    assert router.stage.mode == "chat"
    router.crash()  # the mode survives a restart; the next request carries its own language
    router.clear()
    router.send("asr", Transcript("¿Cuál es la capital de Italia?", language="es"), utt="u5", reliable=True)
    [asked] = router.published("request")
    assert (asked.body.mode, asked.body.language) == ("chat", "es")


@pytest.mark.parametrize(
    ("code", "written", "mode"),
    [
        ("fr", "Discution, quelle est la capitale ?", "chat"),
        ("de", "Gesprech. Wie viel ist das?", "converse"),
        ("es", "Conversasión. ¿Cuánto es?", "converse"),
        ("es", "Charlá. ¿Qué?", "chat"),
        ("de", "Gesetz. Wie viel?", ""),  # another word, though it begins alike
        ("fr", "Discret, quelle ?", ""),
    ],
)
def test_a_mode_name_misspelt_is_heard_by_its_sound_in_the_language(code, written, mode):
    """What Whisper may write for a name: close in the language's own sounds."""
    decision = decided(written, code, pauses_ms=APART)
    assert (decision.mode, decision.text == written) == ((mode, False) if mode else ("dictate", True))
