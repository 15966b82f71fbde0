"""arithmetic: the `calculator` tool, arithmetic the model wrote evaluated without `eval`.

Offers: `calculator(expression)`, the result as text; `evaluate(expression)`, the number;
`MAX_DIGITS`, the magnitude no number may pass.
Guarantees: the expression is parsed with `ast` and only numbers, + - * / // % ** and
parentheses are accepted (spoken and typographic operators are rewritten first); length,
size, nesting and magnitude are bounded, so every call ends quickly and small; what is
refused is a `ToolError` saying why, worded for the model.
"""

import ast
import math
import operator
import re

from stages.thinking.wording import ToolError, format_number

MAX_EXPRESSION = 200  # characters, before any rewriting
MAX_NODES = 256
MAX_DEPTH = 32
MAX_DIGITS = 100  # no number, given or computed, beyond 10**100
ALLOWED = "numbers, + - * / // % ** (or ^) and parentheses"
TOO_LARGE = f"result too large (the limit is 1e{MAX_DIGITS})"
# "1,000" would otherwise parse as a tuple.
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")

# How speech recognisers and models write operators, and how Python spells them.
SPOKEN_OPERATORS = [
    (r"\bto the power of\b", "**"),
    (r"\b(divided by|over)\b", "/"),
    (r"\b(multiplied by|times)\b", "*"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\bmod(ulo)?\b", "%"),
    (r"\bsquared\b", "**2"),
    (r"\bcubed\b", "**3"),
    (r"[×✕∗·]", "*"),
    (r"÷", "/"),
    (r"[−–]", "-"),
    (r"\^", "**"),  # power, never Python's exclusive or
    # An "x" between operands is times, except after a lone 0: "0x10" is hexadecimal.
    (r"(?<=[\d.)\s])(?<!(?<![\w.])0)x(?=\s*[\d.(+-])", "*"),
]

# What a refused construct is called in the error, so the model can rephrase.
REFUSED = {
    ast.Name: "a name",
    ast.Call: "a function call",
    ast.Attribute: "an attribute",
    ast.Subscript: "a subscript",
    ast.Compare: "a comparison",
    ast.BoolOp: "a logical operator",
    ast.IfExp: "a conditional",
    ast.Lambda: "a lambda",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dictionary",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "a string",
    ast.BinOp: "an unsupported operator",
    ast.UnaryOp: "an unsupported operator",
}


def power(base: int | float, exponent: int | float) -> int | float:
    """`base ** exponent`, refused before it is computed if the result would pass the
    limit. (Bounding the result, not the exponent, keeps 1.05 ** 200 possible.)"""
    if base != 0 and exponent * math.log10(abs(base)) > MAX_DIGITS:
        raise ToolError(TOO_LARGE)
    return base**exponent


BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: power,
}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def rewrite_spoken(expression: str) -> str:
    """`expression` with spoken and typographic operators in Python's spelling."""
    text = THOUSANDS.sub("", expression.strip().rstrip("=?").strip())
    for pattern, replacement in SPOKEN_OPERATORS:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text


def is_arithmetic(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)  # not bool, complex, str...
    if isinstance(node, ast.BinOp):
        return type(node.op) in BINARY
    if isinstance(node, ast.UnaryOp):
        return type(node.op) in UNARY
    return False


def refusal(node: ast.expr, source: str) -> str:
    if isinstance(node, ast.Constant):
        kind = "a string" if isinstance(node.value, str | bytes) else "not a number"
    else:
        kind = REFUSED.get(type(node), f"not arithmetic ({type(node).__name__})")
    return f"calculator accepts only {ALLOWED}; {ast.get_source_segment(source, node)!r} is {kind}"


def parse_arithmetic(expression: str) -> ast.expr:
    """The syntax tree of `expression`, once it is known to be plain, small arithmetic."""
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"expression too long ({len(expression)} characters; the limit is {MAX_EXPRESSION})")
    source = rewrite_spoken(expression)
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError):  # also "too many nested parentheses", NUL bytes
        raise ToolError(f"not a valid arithmetic expression: {expression.strip()!r}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ToolError("expression too complex")
    # Every node that is not an expression (operators, contexts...) hangs from one that
    # is, and the walk meets parents first, so the error names the outermost fault.
    for node in nodes:
        if isinstance(node, ast.expr) and not is_arithmetic(node):
            raise ToolError(refusal(node, source))
    return tree.body


def checked(value: int | float | complex) -> int | float:
    if isinstance(value, complex):  # e.g. (-8) ** 0.5
        raise ToolError("the result is not a real number")
    if abs(value) > 10**MAX_DIGITS:  # inf included
        raise ToolError(TOO_LARGE)
    return value


def value_of(node: ast.expr, depth: int = 0) -> int | float:
    if depth > MAX_DEPTH:
        raise ToolError("expression nested too deeply")
    if isinstance(node, ast.UnaryOp):
        return checked(UNARY[type(node.op)](value_of(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp):
        left, right = value_of(node.left, depth + 1), value_of(node.right, depth + 1)
        return checked(BINARY[type(node.op)](left, right))
    return checked(node.value)


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression, with Python's precedence (-3 ** 2 is -9);
    ToolError if it is not plain arithmetic or would cost too much."""
    tree = parse_arithmetic(expression)
    try:
        return value_of(tree)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:  # float arithmetic past 1e308
        raise ToolError(TOO_LARGE) from None


def calculator(expression: str) -> str:
    return format_number(evaluate(expression))
