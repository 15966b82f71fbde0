"""Simple automatic checks of a model's answer, for bench/embedded_llm.py: is a rewrite
still the utterance (and in its language), does an answer hold the right word, in the
language it was asked in. Crude on purpose: they catch a wrong language, an answered
rewrite, a missing fact; the report shows every output for a person to judge the rest.

Pure: text in, verdicts out.
"""

import re
import unicodedata
from dataclasses import dataclass, field

from stages.instruct import FILLERS, is_rewrite

# Words frequent in each language and rare in the others (words two of them share, such
# as "de", "la", "que", "me", "un", are left out): a text's language is the one whose
# words it holds most of. Italian and Portuguese are here only so that a Spanish answer
# drifting into either is seen.
STOP_WORDS = {
    "en": "the and is are you your what of to it that this with for my i we be have will should because not at".split(),
    "de": "der die das und ist ich du nicht ein eine mir mich wann wie was zu mit auf für dass wir sie den dem sind "
    "noch bitte weil sollten kannst von heiße heißt wohne".split(),
    "fr": "le les et est je tu vous il une des du pour qui pas ne à au avec ce cette sont mon ma nous on dans sur "
    "quelle comment parce appelle peux".split(),
    "es": "el los las y es una por para qué cómo con del al se su mi está están son yo tú eres muy pero como "
    "cuál cuánto llamo puedes porque más lo".split(),
    "it": "il gli della di che è sono non io questo quello anche nel alla ciao sei".split(),
    "pt": "não você é dos das meu minha eu são um uma ele ela isso muito em o".split(),
}
STOP_SETS = {code: set(words) for code, words in STOP_WORDS.items()}
# Hesitations Whisper writes down in each language: dropping them is what a rewrite is for.
SPOKEN_FILLERS = FILLERS | {"äh", "ähm", "öhm", "hm", "halt", "also", "euh", "ben", "bon", "eh", "este", "pues"}
# Share of the utterance's content words a rewrite must keep.
KEPT_ENOUGH = 0.7


def tokens(text: str) -> list[str]:
    """Lower-case words, split at apostrophes too ("qu'on" -> "qu", "on")."""
    return re.findall(r"\w+", text.lower())


def folded(word: str) -> str:
    """Without accents: "Berlín" and "Berlin", "María" and "Maria" are one word."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def guess_language(text: str) -> str:
    """The language whose frequent words the text holds most of; "" when it holds none,
    or as many of two languages' ("Paris." says nothing)."""
    words = tokens(text)
    counts = sorted(((sum(word in stop for word in words), code) for code, stop in STOP_SETS.items()), reverse=True)
    (best, code), (second, _) = counts[0], counts[1]
    return code if best > second else ""


def content_words(text: str) -> list[str]:
    stop = set().union(*STOP_SETS.values())
    return [word for word in tokens(text) if word not in SPOKEN_FILLERS and word not in stop]


def kept_share(original: str, rewrite: str) -> float:
    """How many of the original's content words the rewrite still has."""
    content, rewritten = content_words(original), {folded(word) for word in tokens(rewrite)}
    return sum(folded(word) in rewritten for word in content) / max(1, len(content))


def holds_any(text: str, expected: list[str]) -> bool:
    words = {folded(word) for word in tokens(text)}
    return any(all(part in words for part in tokens(folded(word))) for word in expected)


def echoes(output: str, prompt_texts: list[str]) -> bool:
    """Whether the output repeats a text of its prompt whole (the system text, a turn of
    the user's): what a model not tuned to follow instructions does, and no answer."""
    said = " " + " ".join(tokens(output)) + " "
    return any(len(tokens(text)) >= 3 and f" {' '.join(tokens(text))} " in said for text in prompt_texts)


def right_language(text: str, language: str) -> bool:
    """Not recognisably another language (too short to tell counts as right)."""
    return guess_language(text) in ("", language)


@dataclass
class Verdict:
    passed: bool
    failed: list[str] = field(default_factory=list)  # which checks failed, in words
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        return "pass" if self.passed else "fail: " + ", ".join(self.failed)


def verdict(checks: dict[str, bool], details: dict) -> Verdict:
    failed = [name for name, ok in checks.items() if not ok]
    return Verdict(not failed, failed, details)


def check_clarify(original: str, output: str, language: str, system: str) -> Verdict:
    """A rewrite: voxkey would type it (stages/instruct.py's is_rewrite: no answer, no
    comment, no more words), it keeps most content words, and it stays in the language."""
    kept = kept_share(original, output)
    return verdict(
        {
            "echoes the prompt": not echoes(output, [system]),
            "not a rewrite": is_rewrite(original, output),
            f"kept {kept:.0%} of the words": kept >= KEPT_ENOUGH,
            f"in {guess_language(output) or '?'}": right_language(output, language),
        },
        {"kept": round(kept, 2), "guessed": guess_language(output), "typed": is_rewrite(original, output)},
    )


def check_answer(output: str, expected: list[str], language: str, prompt_texts: list[str]) -> Verdict:
    """An answer: it holds one of the expected words, in the language asked, and is not
    a repeat of what was said to it (a follow-up's first turn holds the name too)."""
    return verdict(
        {
            "echoes the prompt": not echoes(output, prompt_texts),
            "no " + "/".join(expected[:3]): holds_any(output, expected),
            f"in {guess_language(output) or '?'}": right_language(output, language),
        },
        {"guessed": guess_language(output)},
    )
