"""wording: how the thinking model's tools word what they hand back to it.

Offers: `ToolError`, a refusal or bad input whose message is meant for the model, and
`format_number`, a number as a person would write it.
"""


class ToolError(ValueError):
    """A refusal or a bad input, worded for the model that made the call."""


def format_number(value: int | float) -> str:
    """A number as a person writes it: whole numbers without ".0", the rest to 10
    significant digits (so 0.1 + 0.2 reads 0.3, not 0.30000000000000004)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:.10g}"
