"""Which language an utterance is recognised in, when [stages.asr] language = "auto".

Whisper's own guess (its language token's probabilities, from the encoder's output) is
unreliable on short speech: measured with the multilingual base on tests/audio/languages,
"Lösch das." came out Japanese at 0.91, "Nouvelle ligne." English at 0.56, and one in
five dictated sentences went to a language nobody spoke (Latin, Thai). Decoding in a
wrong language writes gibberish or a translation, so the guess is not followed blindly:

* only the languages the user speaks (`languages`) are candidates, when given;
* the language stays what it was (sticky) unless the utterance is long enough to judge
  (`language_switch_s`), another language is sure enough (`language_switch_probability`)
  and far more likely than the one in use (`language_switch_ratio`); so a short command
  or a name never flips it, and a sentence in the other language does;
* the first utterance takes the first of `languages`, or, with none given, what Whisper
  heard, if it is sure enough, else English.

Pure: probabilities in, a language out.
"""

from dataclasses import dataclass

from bus.frames import SAMPLE_RATE

AUTO = "auto"


@dataclass(frozen=True)
class LanguageRule:
    languages: tuple[str, ...] = ()  # the candidates; empty: every language Whisper knows
    switch_s: float = 2.0
    switch_probability: float = 0.5
    switch_ratio: float = 4.0
    fallback: str = "en"

    @classmethod
    def of(cls, settings: dict) -> "LanguageRule":
        return cls(
            tuple(str(code) for code in settings.get("languages", ())),
            float(settings.get("language_switch_s", cls.switch_s)),
            float(settings.get("language_switch_probability", cls.switch_probability)),
            float(settings.get("language_switch_ratio", cls.switch_ratio)),
        )

    def first(self) -> str:
        """The language before any utterance was heard: "" to let the first one decide."""
        return self.languages[0] if self.languages else ""


def candidates(probabilities: dict[str, float], rule: LanguageRule) -> dict[str, float]:
    if not rule.languages:
        return probabilities
    return {code: probabilities.get(code, 0.0) for code in rule.languages}


def choose(probabilities: dict[str, float], current: str, samples: int, rule: LanguageRule) -> str:
    """The language to recognise an utterance of `samples` samples in, given Whisper's
    probabilities for it and the language in use (`current`, "" if none yet)."""
    heard = candidates(probabilities, rule)
    best = max(heard, key=heard.get, default=current or rule.fallback)
    sure = heard.get(best, 0.0) >= rule.switch_probability
    if not current:
        return best if sure else rule.first() or rule.fallback
    if best == current:
        return current
    long_enough = samples >= rule.switch_s * SAMPLE_RATE
    far_likelier = heard.get(best, 0.0) >= rule.switch_ratio * heard.get(current, 0.0)
    return best if long_enough and sure and far_likelier else current


def probabilities_of(model, encoded) -> dict[str, float]:
    """Whisper's language probabilities for one encoded window ("<|de|>" -> "de")."""
    return {token[2:-2]: probability for token, probability in model.model.detect_language(encoded)[0]}
