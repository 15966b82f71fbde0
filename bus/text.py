"""What may reach the keyboard: text, never key combinations or control characters."""

import re
import unicodedata

# Cc: control characters (escape, backspace, bell...); Cf: invisible format characters
# (bidi overrides that make text read differently from what it is); Cs/Co: surrogates
# and private use, which no keyboard layout can type.
_UNTYPABLE = {"Cc", "Cf", "Cs", "Co"}
_KEEP = {"\u200d"}  # zero-width joiner: part of emoji sequences


def safe_text(text: str, allow_newlines: bool) -> str:
    """Drop control characters; a newline (which runs a command in a terminal) is kept
    only when allowed, otherwise it becomes a space; a tab becomes a space."""
    out = []
    for char in text:
        if char == "\n":
            out.append("\n" if allow_newlines else " ")
        elif char == "\t":
            out.append(" ")
        elif char in _KEEP or unicodedata.category(char) not in _UNTYPABLE:
            out.append(char)
    return "".join(out)


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped: how spoken text is compared."""
    return re.findall(r"[\w']+", text.lower())


def plain(text: str) -> str:
    """The words of `text` joined by single spaces ("New line." -> "new line")."""
    return " ".join(words(text))
