"""Which language "auto" recognises an utterance in: the sticky rule (stages/asr/language.py),
values in and out, on probabilities of the kind Whisper base gave on tests/audio/languages."""

from bus.frames import SAMPLE_RATE
from stages.asr.language import LanguageRule, choose

RULE = LanguageRule(languages=("de", "en"))
SHORT, LONG = 1 * SAMPLE_RATE, 4 * SAMPLE_RATE


def test_a_short_command_guessed_as_another_language_keeps_the_language_in_use():
    lösch_das = {"ja": 0.91, "ko": 0.01, "de": 0.004}  # measured: "Lösch das." heard as Japanese
    assert choose(lösch_das, "de", SHORT, LanguageRule()) == "de"
    assert choose(lösch_das, "de", LONG, RULE) == "de"  # Japanese is no candidate


def test_a_long_sure_sentence_in_another_candidate_language_switches():
    english = {"en": 0.92, "de": 0.03}
    assert choose(english, "de", LONG, RULE) == "en"
    assert choose(english, "de", SHORT, RULE) == "de"  # too short to judge
    unsure = {"en": 0.45, "de": 0.05}
    assert choose(unsure, "de", LONG, RULE) == "de"
    close = {"en": 0.6, "de": 0.3}  # not far likelier than the language in use
    assert choose(close, "de", LONG, RULE) == "de"


def test_the_first_utterance_takes_the_first_language_unless_the_guess_is_sure():
    assert RULE.first() == "de"
    assert choose({"la": 0.37, "en": 0.25}, "", LONG, LanguageRule()) == "en"  # unsure: the fallback
    assert choose({"fr": 0.85}, "", LONG, LanguageRule()) == "fr"
    assert choose({"en": 0.2, "de": 0.1}, "", LONG, RULE) == "de"


def test_rule_reads_the_settings():
    rule = LanguageRule.of({"languages": ["fr", "es"], "language_switch_s": 3, "language_switch_ratio": 2})
    assert rule == LanguageRule(("fr", "es"), 3.0, 0.5, 2.0)
