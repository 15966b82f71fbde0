"""tools: the sandboxed local tools a thinking model may call in converse mode.

Offers: `calculator` (arithmetic), `current_datetime` (the date and time, here or in an
IANA zone) and `convert_units` (length, mass, volume, temperature, speed, time, data);
`TOOLS`, their registry; `tool_specs()`, their descriptions in the JSON-schema form
LFM2 models expect in the system prompt; and `run_tool(name, args)`, the one door the
model's calls come through.
Guarantees: nothing here runs a shell, evaluates, executes or imports anything the model
wrote, or touches files or the network (beyond the system's time-zone database, which
`zoneinfo` reads by validated key); arithmetic is parsed with `ast` and bounded in
length, size, nesting and magnitude, so every call ends quickly and small; `run_tool`
never raises -- each outcome is a `ToolResult` whose text is one line, fit to be fed
back to the model.
"""

import ast
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ToolError(ValueError):
    """A refusal or a bad input, worded for the model that made the call."""


def format_number(value: int | float) -> str:
    """A number as a person writes it: whole numbers without ".0", the rest to 10
    significant digits (so 0.1 + 0.2 reads 0.3, not 0.30000000000000004)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:.10g}"


# -- calculator ---------------------------------------------------------------------

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


# -- date and time ------------------------------------------------------------------


def describe_moment(moment: datetime, zone_label: str) -> str:
    """ "Monday 23 November 2026, 14:05 (UTC)" -- English whatever the locale, as
    Python leaves the C locale in place."""
    return f"{moment:%A} {moment.day} {moment:%B %Y, %H:%M} ({zone_label})"


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # ValueError: keys that would leave the zone database ("../x", "/etc/x");
    # OSError: keys naming one of its folders ("Europe").
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'") from None


def current_datetime(timezone: str = "") -> str:
    name = timezone.strip()
    if not name:
        local = datetime.now().astimezone()
        return describe_moment(local, local.tzname() or "local time")
    return describe_moment(datetime.now(time_zone(name)), name)


# -- units --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    kind: str
    symbol: str  # how results name it
    factor: float  # its size in the kind's base unit
    offset: float = 0.0  # added before scaling: temperature scales start at different zeros

    def to_base(self, value: float) -> float:
        return (value + self.offset) * self.factor

    def from_base(self, value: float) -> float:
        return value / self.factor - self.offset


# Per kind, each unit's names -- the first is its symbol in results -- then its factor
# (and offset) against the kind's base unit. Names are matched as `unit_key` leaves
# them: any case, singular, "metre" and "litre" as "meter" and "liter".
KINDS = {
    "length": [  # metre
        (("mm", "millimeter"), 0.001),
        (("cm", "centimeter"), 0.01),
        (("m", "meter"), 1.0),
        (("km", "kilometer"), 1000.0),
        (("in", "inch"), 0.0254),
        (("ft", "foot", "feet"), 0.3048),
        (("yd", "yard"), 0.9144),
        (("mi", "mile"), 1609.344),
        (("nmi", "nautical mile"), 1852.0),
    ],
    "mass": [  # kilogram
        (("mg", "milligram"), 1e-6),
        (("g", "gram"), 0.001),
        (("kg", "kilogram", "kilo"), 1.0),
        (("t", "tonne", "metric ton"), 1000.0),
        (("oz", "ounce"), 0.028349523125),
        (("lb", "pound"), 0.45359237),
        (("st", "stone"), 6.35029318),
    ],
    "volume": [  # litre; US customary measures
        (("ml", "milliliter"), 0.001),
        (("l", "liter"), 1.0),
        (("tsp", "teaspoon"), 0.00492892159375),
        (("tbsp", "tablespoon"), 0.01478676478125),
        (("fl oz", "fluid ounce"), 0.0295735295625),
        (("cup",), 0.2365882365),
        (("pt", "pint"), 0.473176473),
        (("qt", "quart"), 0.946352946),
        (("gal", "gallon"), 3.785411784),
    ],
    "temperature": [  # kelvin
        (("°C", "celsius", "centigrade"), 1.0, 273.15),
        (("°F", "fahrenheit"), 5 / 9, 459.67),
        (("K", "kelvin"), 1.0),
    ],
    "speed": [  # metre per second
        (("m/s", "mps", "meter per second"), 1.0),
        (("km/h", "kmh", "kph", "kilometer per hour"), 1 / 3.6),
        (("mph", "mile per hour"), 0.44704),
        (("kn", "kt", "knot"), 1852 / 3600),
    ],
    "time": [  # second
        (("ms", "millisecond"), 0.001),
        (("s", "sec", "second"), 1.0),
        (("min", "minute"), 60.0),
        (("h", "hr", "hour"), 3600.0),
        (("d", "day"), 86400.0),
        (("wk", "week"), 604800.0),
    ],
    "data": [  # byte; SI prefixes count in thousands, binary ones in 1024s
        (("B", "byte"), 1.0),
        (("kB", "kilobyte"), 1e3),
        (("MB", "megabyte"), 1e6),
        (("GB", "gigabyte"), 1e9),
        (("TB", "terabyte"), 1e12),
        (("KiB", "kibibyte"), 2.0**10),
        (("MiB", "mebibyte"), 2.0**20),
        (("GiB", "gibibyte"), 2.0**30),
        (("TiB", "tebibyte"), 2.0**40),
    ],
}


def unit_key(name: str) -> str:
    key = " ".join(name.lower().replace("°", "").split())
    key = re.sub(r"^deg(ree)?s? ", "", key)
    return key.replace("metre", "meter").replace("litre", "liter")


def index_units(kinds: dict[str, list[tuple]]) -> dict[str, Unit]:
    index: dict[str, Unit] = {}
    for kind, rows in kinds.items():
        for names, *size in rows:
            entry = Unit(kind, names[0], *size)
            for key in map(unit_key, names):
                assert key not in index, f"unit name {key!r} is given twice"
                index[key] = entry
    return index


UNIT_NAMES = index_units(KINDS)


def known_units() -> str:
    """ "length: mm, cm, ...; mass: ..." -- what an unknown unit's error offers instead."""
    return "; ".join(f"{kind}: {', '.join(names[0] for names, *_ in rows)}" for kind, rows in KINDS.items())


def singulars(key: str) -> list[str]:
    """`key` and what it would be without a plural ending. Only the word before "per"
    takes one ("miles per hour"), and two-letter keys are symbols ("ms" is not "m")."""
    head, per, tail = key.partition(" per ")
    if len(head) <= 2:
        return [key]
    return [key] + [head[: -len(end)] + per + tail for end in ("s", "es") if head.endswith(end)]


def unit(name: str) -> Unit:
    for key in singulars(unit_key(name)):
        if key in UNIT_NAMES:
            return UNIT_NAMES[key]
    raise ToolError(f"unknown unit {name!r}; known units are {known_units()}")


def real(value: int | float | str) -> float:
    """`value` as a finite float. Models send numbers and numeric strings alike; a string
    may be any arithmetic the calculator takes ("1,500", "3/4")."""
    if isinstance(value, str):
        try:
            value = evaluate(value)
        except ToolError:
            raise ToolError(f"value {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"value must be a number, not {type(value).__name__}")
    if not abs(value) <= 10**MAX_DIGITS:  # also refuses nan and inf
        raise ToolError("value must be a finite number no larger than 1e100")
    return float(value)


def convert(value: float, source: Unit, target: Unit) -> float:
    if source.kind != target.kind:
        raise ToolError(f"cannot convert {source.kind} ({source.symbol}) to {target.kind} ({target.symbol})")
    base = source.to_base(value)
    if source.kind == "temperature" and base < 0:
        raise ToolError(f"{format_number(value)} {source.symbol} is below absolute zero")
    return target.from_base(base)


def convert_units(value: int | float | str, from_unit: str, to_unit: str) -> str:
    amount, source, target = real(value), unit(from_unit), unit(to_unit)
    result = convert(amount, source, target)
    return f"{format_number(amount)} {source.symbol} = {format_number(result)} {target.symbol}"


# -- registry and dispatch ----------------------------------------------------------


@dataclass
class ToolResult:
    ok: bool
    text: str  # the result, or what went wrong; one line either way


@dataclass(frozen=True)
class Tool:
    function: Callable[..., str]
    description: str
    parameters: dict[str, tuple[str, str]]  # name -> (JSON type, description)
    required: tuple[str, ...]


TOOLS: dict[str, Tool] = {
    "calculator": Tool(
        calculator,
        "Evaluate arithmetic exactly: numbers, + - * / // % ** (or ^) and parentheses. "
        "Use it rather than working sums out yourself.",
        {"expression": ("string", "the arithmetic, e.g. '17 * 23' or '(1 + 2) ** 3 / 4'")},
        ("expression",),
    ),
    "current_datetime": Tool(
        current_datetime,
        "The current date and time, here or in a given time zone.",
        {"timezone": ("string", "an IANA time zone such as 'Europe/Paris'; empty for local time")},
        (),
    ),
    "convert_units": Tool(
        convert_units,
        "Convert a value between units of length, mass, volume (US), temperature, speed, time or data size.",
        {
            "value": ("number", "the amount to convert"),
            "from_unit": ("string", "the unit it is in, e.g. 'km', 'pound', 'celsius', 'GiB'"),
            "to_unit": ("string", "the unit wanted, e.g. 'mile'"),
        },
        ("value", "from_unit", "to_unit"),
    ),
}

# Python types each JSON type admits. Models often quote numbers, so a "number" may
# arrive as a string; the tool parses it.
ADMITS = {"string": (str,), "number": (int, float, str)}


def argument_problem(name: str, tool: Tool, args: object) -> str | None:
    """Why `args` cannot be passed to `tool`, or None if they can."""
    if not isinstance(args, dict):
        return f"{name} takes its arguments as an object, not {type(args).__name__}"
    for arg in args:
        if arg not in tool.parameters:
            return f"{name} has no argument {arg!r}; its arguments are: {', '.join(tool.parameters)}"
    for arg in tool.required:
        if arg not in args:
            return f"{name} is missing its argument {arg!r}"
    for arg, value in args.items():
        json_type = tool.parameters[arg][0]
        if isinstance(value, bool) or not isinstance(value, ADMITS[json_type]):
            return f"{name} argument {arg!r} must be a {json_type}, not {type(value).__name__}"
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


def run_tool(name: str, args: dict) -> ToolResult:
    """Call tool `name` with keyword arguments `args`. Never raises: unknown tools, bad
    arguments, refusals and the tool's own failures all come back as ok=False."""
    tool = TOOLS.get(name) if isinstance(name, str) else None
    if tool is None:
        return ToolResult(False, f"unknown tool {name!r}; available: {', '.join(TOOLS)}")
    problem = argument_problem(name, tool, args)
    if problem:
        return ToolResult(False, one_line(problem))
    try:
        return ToolResult(True, one_line(tool.function(**args)))
    except ToolError as error:
        return ToolResult(False, one_line(str(error)))
    except Exception as error:  # a bug in a tool must not end the conversation
        return ToolResult(False, one_line(f"{name} failed: {type(error).__name__}: {error}"))


def tool_specs() -> list[dict]:
    """The tools as LFM2 expects them listed in its system prompt (JSON-serializable)."""
    return [
        {
            "name": name,
            "description": tool.description,
            "parameters": {
                "type": "object",
                "properties": {
                    arg: {"type": json_type, "description": description}
                    for arg, (json_type, description) in tool.parameters.items()
                },
                "required": list(tool.required),
            },
        }
        for name, tool in TOOLS.items()
    ]
