"""The thinking model's local tools, called the way the model calls them: by name,
through `run_tool`."""

import json
import re
from datetime import datetime

import pytest

from stages.thinking.tools import TOOLS, run_tool, tool_specs


def answer(name: str, **args) -> str:
    result = run_tool(name, args)
    assert result.ok, result.text
    return result.text


def refusal(name: str, **args) -> str:
    result = run_tool(name, args)
    assert not result.ok, result.text
    assert result.text and "\n" not in result.text
    return result.text


def converted(value, from_unit: str, to_unit: str) -> float:
    """The number in "5 km = 3.106855961 mi"."""
    text = answer("convert_units", value=value, from_unit=from_unit, to_unit=to_unit)
    return float(text.split(" = ")[1].split()[0])


@pytest.mark.parametrize(
    "expression, result",
    [
        ("17 * 23", "391"),
        ("17 x 23", "391"),
        ("17 × 23", "391"),
        ("6 times 7", "42"),
        ("2^10", "1024"),
        ("2 to the power of 8", "256"),
        ("(1+2)*3/4", "2.25"),
        ("-3 ** 2", "-9"),  # Python's precedence: -(3 ** 2)
        ("10 / 2", "5"),
        ("0.1 + 0.2", "0.3"),
        ("7 // 2", "3"),
        ("7 % 4", "3"),
        ("12 ÷ 4", "3"),
        ("1,000 x 3", "3000"),
        ("2 ** -1", "0.5"),
        ("1.05 ** 200", "17292.58082"),
        ("0x10", "16"),
        ("17 * 23 =", "391"),
    ],
)
def test_the_calculator_computes(expression, result):
    assert answer("calculator", expression=expression) == result


@pytest.mark.parametrize(
    "expression, because",
    [
        ("__import__('os').system('ls')", "function call"),
        ("open('/etc/passwd')", "function call"),
        ("a+1", "name"),
        ("1 if 1 else 2", "conditional"),
        ("[1,2]", "list"),
        ("'a'*3", "string"),
        ("(1).real", "attribute"),
        ("(1, 2)[0]", "subscript"),
        ("1 < 2", "comparison"),
        ("lambda: 1", "lambda"),
        ("[n for n in (1,)]", "comprehension"),
        ("True + 1", "not a number"),
        ("1 | 2", "unsupported operator"),
        ("9**9**9", "too large"),
        ("10**1000", "too large"),
        ("1e999", "too large"),
        ("1" + "+1" * 5000, "too long"),
        ("-" * 100 + "1", "nested too deeply"),
        ("(-8) ** 0.5", "not a real number"),
        ("1/0", "division by zero"),
        ("2 +", "not a valid"),
    ],
)
def test_the_calculator_refuses(expression, because):
    assert because in refusal("calculator", expression=expression)


def test_units_convert():
    assert converted(5, "km", "mile") == pytest.approx(3.10686, rel=1e-5)
    assert converted(100, "f", "c") == pytest.approx(37.7777778)
    assert converted(0, "c", "k") == pytest.approx(273.15)
    assert converted(1, "GiB", "MiB") == 1024
    assert converted(1, "GB", "MB") == 1000
    assert converted(3, "pounds", "kg") == pytest.approx(1.36077711)
    assert converted(1, "fluid ounce", "ml") == pytest.approx(29.5735296)
    assert converted(36, "Kilometres per hour", "m/s") == pytest.approx(10)


def test_unit_names_are_forgiving():
    assert converted("5", "Kilometers", "MILES") == converted(5, "km", "mi")
    assert converted("1,500", "degrees Celsius", "°F") == pytest.approx(2732)
    assert converted(12, "inches", "feet") == 1


def test_unit_conversion_refusals_name_the_problem():
    text = refusal("convert_units", value=1, from_unit="kg", to_unit="m")
    assert "mass" in text and "length" in text
    assert "furlong" in refusal("convert_units", value=1, from_unit="furlong", to_unit="m")
    assert "absolute zero" in refusal("convert_units", value=-300, from_unit="c", to_unit="k")
    assert "not a number" in refusal("convert_units", value="five", from_unit="m", to_unit="ft")


def test_the_date_is_today():
    years = {str(datetime.now().year)}
    text = answer("current_datetime")
    years.add(str(datetime.now().year))
    assert any(year in text for year in years)
    assert re.fullmatch(r"\w+day \d{1,2} \w+ \d{4}, \d\d:\d\d \(.+\)", text)
    assert answer("current_datetime", timezone="Asia/Tokyo").endswith("(Asia/Tokyo)")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe", "../../etc/passwd", "/etc/passwd"])
def test_unknown_time_zones_are_refused(zone):
    assert "unknown time zone" in refusal("current_datetime", timezone=zone)


def test_unknown_tools_are_refused_with_the_list():
    expected = "unknown tool 'x'; available: calculator, current_datetime, convert_units"
    assert refusal("x") == expected


@pytest.mark.parametrize(
    "args, because",
    [
        ({}, "missing"),
        ({"expr": "1"}, "no argument 'expr'"),
        ({"expression": "1", "extra": 2}, "no argument 'extra'"),
        ({"expression": 17}, "must be a string"),
    ],
)
def test_bad_arguments_are_refused(args, because):
    assert because in refusal("calculator", **args)


def test_the_dispatcher_never_raises():
    assert not run_tool(["calculator"], {}).ok
    assert not run_tool("calculator", None).ok
    assert not run_tool("convert_units", {"value": True, "from_unit": "m", "to_unit": "ft"}).ok


def test_specs_describe_the_registry():
    specs = tool_specs()
    assert [spec["name"] for spec in specs] == list(TOOLS)
    for spec in specs:
        parameters = spec["parameters"]
        assert parameters["type"] == "object"
        assert set(parameters["required"]) <= set(parameters["properties"])
    assert json.loads(json.dumps(specs)) == specs
