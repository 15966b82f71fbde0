"""tools: the sandboxed local tools a thinking model may call in converse mode.

Offers: `TOOLS`, the registry of `calculator` (arithmetic.py), `current_datetime` (the
date and time, here or in an IANA zone) and `convert_units` (length, mass, volume,
temperature, speed, time, data; units.py); `tool_specs()`, their descriptions in the
JSON-schema form LFM2 models expect in the system prompt; and `run_tool(name, args)`,
the one door the model's calls come through.
Guarantees: nothing here runs a shell, evaluates, executes or imports anything the model
wrote, or touches files or the network (beyond the system's time-zone database, which
`zoneinfo` reads by validated key); arithmetic is parsed with `ast` and bounded in
length, size, nesting and magnitude, so every call ends quickly and small; `run_tool`
never raises -- each outcome is a `ToolResult` whose text is one line, fit to be fed
back to the model.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stages.thinking.arithmetic import calculator
from stages.thinking.units import convert_units
from stages.thinking.wording import ToolError

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
