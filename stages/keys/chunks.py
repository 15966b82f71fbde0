"""Cutting a long piece into chunks that keys types one by one, writing down after each
how far it got: killed mid-piece, keys types the rest once when the piece comes again,
with at most one chunk in doubt.

A cut never falls inside a user-perceived character: a sink handed half of "é" written
as e + combining accent, or half of a flag or a family emoji, would type something the
user did not say, and on a resend the other half alone.
"""

import unicodedata

ZWJ = "\u200d"  # zero-width joiner: binds the emoji on both sides into one


def joins_previous(char: str) -> bool:
    """Whether `char` belongs to the character before it (extends its grapheme)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")  # combining marks
        or char == ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors (text or emoji presentation)
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
        or 0xDC00 <= code <= 0xDFFF  # a low surrogate, should a string carry one
    )


def is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def boundary(text: str, at: int) -> bool:
    """Whether `text` may be cut before index `at` without splitting a grapheme."""
    if at <= 0 or at >= len(text):
        return True
    before, after = text[at - 1], text[at]
    if joins_previous(after) or before == ZWJ or (before == "\r" and after == "\n"):
        return False
    if is_regional_indicator(before) and is_regional_indicator(after):
        # Flags are pairs of regional indicators: cut only after an even run of them.
        run = 0
        while at - 1 - run >= 0 and is_regional_indicator(text[at - 1 - run]):
            run += 1
        return run % 2 == 0
    return True


def chunked(text: str, size: int) -> list[str]:
    """`text` in consecutive chunks of about `size` characters (0: one chunk), each cut
    at a grapheme boundary: a chunk is longer than `size` only to finish a grapheme."""
    if size <= 0 or len(text) <= size:
        return [text] if text else []
    out, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        while not boundary(text, end):
            end += 1
        out.append(text[start:end])
        start = end
    return out
