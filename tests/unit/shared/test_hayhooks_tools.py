"""The enhanced wrapper's offline tools: safe arithmetic, time zones, unit conversion."""

from datetime import UTC, datetime

import pytest

from shared import hayhooks_tools as tools


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("17 * 23", "391"),
        ("17 × 23", "391"),
        ("(1 + 2) ^ 3", "27"),
        ("10 / 4", "2.5"),
        ("7 // 2", "3"),
        ("sqrt(16) + abs(-2)", "6"),
        ("12.5 % of 80", "10"),
        ("-pi", "-3.14159265359"),
        ("round(2.567, 2)", "2.57"),
    ],
)
def test_calculator(expression, result):
    assert tools.calculate(expression) == result


@pytest.mark.parametrize(
    "expression",
    ["__import__('os')", "open('x')", "1 if 1 else 2", "a + 1", "9 ** 9 ** 9", "1/0", "sqrt(-1)", "x" * 300, "", "[1]"],
)
def test_calculator_refuses_with_a_sentence(expression):
    with pytest.raises(tools.ToolInputError) as info:
        tools.calculate(expression)
    assert str(info.value).endswith(".")


def test_pretty_expression():
    assert tools.pretty_expression("17*23") == "17 × 23"
    assert tools.pretty_expression("(2+3)/4") == "(2 + 3) ÷ 4"
    assert tools.pretty_expression("2**8") == "2^8"


def test_current_time_in_a_zone():
    fixed = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert (
        tools.current_time("Europe/Berlin", now=lambda: fixed)
        == "Wednesday 2026-07-01 14:00 in Europe/Berlin (UTC+02:00)"
    )
    assert tools.current_time("", now=lambda: fixed).endswith("in UTC (UTC+00:00)")
    with pytest.raises(tools.ToolInputError):
        tools.current_time("Mars/Base")


@pytest.mark.parametrize(
    ("args", "result"),
    [
        ((5, "km", "mi"), "5 km = 3.1068559612 mi"),
        ((100, "C", "F"), "100 C = 212 F"),
        ((1, "GiB", "MB"), "1 GiB = 1073.741824 MB"),
        ((2, "pounds", "kg"), "2 pounds = 0.90718474 kg"),
        ((90, "km/h", "m/s"), "90 km/h = 25 m/s"),
    ],
)
def test_convert_units(args, result):
    assert tools.convert_units(*args) == result


def test_convert_units_refuses_mismatches():
    for args in [(1, "kg", "m"), (1, "C", "kg"), (1, "parsec", "m"), ("many", "m", "km")]:
        with pytest.raises(tools.ToolInputError):
            tools.convert_units(*args)


def test_status_lines_and_summary():
    assert tools.tool_doing("calculator", {"expression": "17*23"}) == "Calculating 17 × 23"
    assert tools.tool_doing("calculator", {}) == "Calculating"
    assert (
        tools.tool_doing("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi"}) == "Converting 5 km to mi"
    )
    assert tools.tool_done("calculator", {"expression": "17*23"}, "391", False) == "17 × 23 = 391"
    assert tools.tool_done("current_time", {}, "boom", True) == "The clock could not do that"
    assert tools.tools_summary(["calculator", "current_time", "calculator"]) == "calculator ×2, current_time"
    assert {t.name for t in tools.OFFLINE_TOOLS} == {"calculator", "current_time", "convert_units"}
