"""units: the `convert_units` tool, between units of one kind.

Offers: `convert_units(value, from_unit, to_unit)`, the conversion as text, over length,
mass, volume (US customary), temperature, speed, time and data size (`KINDS`).
Guarantees: a unit is found by any of its names, in any case, singular or plural; a
value may be a number or any arithmetic the calculator takes; converting between kinds,
below absolute zero, or an unknown unit or value is a `ToolError` saying why.
"""

import re
from dataclasses import dataclass

from stages.thinking.arithmetic import MAX_DIGITS, evaluate
from stages.thinking.wording import ToolError, format_number


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
