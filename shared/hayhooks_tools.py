"""Offline tools for the enhanced Hayhooks wrapper: a safe calculator, the time in a time zone,
and unit conversion. Plain functions with JSON-schema specs; the wrapper turns them into Haystack
tools. Each tool also says, in words, what it is doing and what it found (for status lines).
"""

import ast
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# --- calculator: parsed with ast, evaluated node by node (no eval) -------------------------------

MAX_EXPRESSION = 200
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "log10": math.log10,
    "ln": math.log,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_SYMBOLS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "^": "**"})


class ToolInputError(ValueError):
    """A tool was asked something it cannot do; the message is a sentence for the model and the user."""


_PERCENT_OF = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%\s*of\s+", re.IGNORECASE)


def _normalise(expression: str) -> str:
    text = expression.strip().translate(_SYMBOLS)
    # "12.5 % of 80" reads as a percentage; a lone % stays modulo.
    # The look-behind starts a match only at the first digit of a number: without it a long run of
    # digits is rescanned from every position (quadratic).
    return _PERCENT_OF.sub(r"(\1/100)*", text)


def _check(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or abs(value) > MAX_MAGNITUDE):
        raise ToolInputError("The result is too large to show.")
    if isinstance(value, int) and value.bit_length() > 1000:
        raise ToolInputError("The result is too large to show.")
    return value


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT or (abs(base) > 1 and abs(exponent) * math.log10(abs(base) or 1) > 300):
        raise ToolInputError("That power is too large to compute.")
    return base**exponent


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _check(_power(left, right))
        return _check(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords or len(node.args) > 10:
            raise ToolInputError(f"{node.func.id}() takes only plain numbers.")
        return _check(_FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args)))
    raise ToolInputError("Only numbers, + - × ÷ ^ %, parentheses and sqrt, sin, log, ... are allowed.")


def format_number(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    return str(value)


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression safely; the result as text."""
    text = _normalise(str(expression))
    if not text:
        raise ToolInputError("There is no expression to calculate.")
    if len(text) > MAX_EXPRESSION:
        raise ToolInputError(f"The expression is longer than {MAX_EXPRESSION} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolInputError(f"{expression!r} is not an arithmetic expression.") from None
    try:
        return format_number(_evaluate(tree))
    except ZeroDivisionError:
        raise ToolInputError("Division by zero.") from None
    except (OverflowError, ValueError, TypeError) as exc:
        if isinstance(exc, ToolInputError):
            raise
        raise ToolInputError("That calculation has no real result.") from None


def pretty_expression(expression: str) -> str:
    """`17*23` as `17 × 23`, for a status line: one pass over at most 200 characters."""
    text = str(expression).strip()[:200].replace("**", "^")
    out: list[str] = []
    for index, char in enumerate(text):
        if char == "*":
            out.append(" × ")
        elif char == "/":
            out.append(" ÷ ")
        elif char in "+-" and _binary(text, index, out):
            out.append(f" {char} ")
        else:
            out.append(char)
    return " ".join("".join(out).split())[:80]


def _binary(text: str, index: int, out: list[str]) -> bool:
    """Whether the sign at `index` joins two operands (`2-3`, `(1)+(2)`), not a unary `-3` or `2e-5`."""
    before = "".join(out).rstrip()[-1:]
    after = text[index + 1 :].lstrip()[:1]
    return (before.isdigit() or before == ")") and (after.isdigit() or after == "(")


# --- current time -------------------------------------------------------------------------------------


def current_time(timezone_name: str = "UTC", *, now: Callable[[], datetime] | None = None) -> str:
    """The date and time now in an IANA time zone ("Europe/Berlin"), or UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (timezone_name or "UTC").strip() or "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolInputError(f"{name!r} is not a time zone name like Europe/Berlin or America/New_York.") from None
    moment = (now() if now else datetime.now(UTC)).astimezone(zone)
    offset = moment.strftime("%z")
    return f"{moment:%A %Y-%m-%d %H:%M} in {name} (UTC{offset[:3]}:{offset[3:]})"


# --- unit conversion ---------------------------------------------------------------------------------

# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, float]] = {
    # length, base metre
    "m": ("length", 1),
    "km": ("length", 1000),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "mi": ("length", 1609.344),
    "yd": ("length", 0.9144),
    "ft": ("length", 0.3048),
    "in": ("length", 0.0254),
    "nmi": ("length", 1852),
    # mass, base kilogram
    "kg": ("mass", 1),
    "g": ("mass", 0.001),
    "mg": ("mass", 1e-6),
    "t": ("mass", 1000),
    "lb": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "st": ("mass", 6.35029318),
    # volume, base litre
    "l": ("volume", 1),
    "ml": ("volume", 0.001),
    "m3": ("volume", 1000),
    "gal": ("volume", 3.785411784),
    "qt": ("volume", 0.946352946),
    "pt": ("volume", 0.473176473),
    "cup": ("volume", 0.2365882365),
    "floz": ("volume", 0.0295735295625),
    # time, base second
    "s": ("time", 1),
    "min": ("time", 60),
    "h": ("time", 3600),
    "day": ("time", 86400),
    "week": ("time", 604800),
    # speed, base metre per second
    "m/s": ("speed", 1),
    "km/h": ("speed", 1 / 3.6),
    "mph": ("speed", 0.44704),
    "kn": ("speed", 0.514444),
    # data, base byte
    "b": ("data", 1),
    "kb": ("data", 1e3),
    "mb": ("data", 1e6),
    "gb": ("data", 1e9),
    "tb": ("data", 1e12),
    "kib": ("data", 1024),
    "mib": ("data", 1024**2),
    "gib": ("data", 1024**3),
    "tib": ("data", 1024**4),
}
_ALIASES = {
    "meter": "m", "metre": "m", "meters": "m", "metres": "m", "kilometer": "km", "kilometre": "km",
    "kilometers": "km", "kilometres": "km", "centimeter": "cm", "centimeters": "cm", "millimeter": "mm",
    "millimeters": "mm", "mile": "mi", "miles": "mi", "yard": "yd", "yards": "yd", "foot": "ft", "feet": "ft",
    "inch": "in", "inches": "in", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg",
    "gram": "g", "grams": "g", "milligram": "mg", "tonne": "t", "tonnes": "t", "pound": "lb", "pounds": "lb",
    "lbs": "lb", "ounce": "oz", "ounces": "oz", "stone": "st", "liter": "l", "litre": "l", "liters": "l",
    "litres": "l", "milliliter": "ml", "millilitre": "ml", "gallon": "gal", "gallons": "gal", "quart": "qt",
    "pint": "pt", "cups": "cup", "fl oz": "floz", "fl_oz": "floz", "second": "s", "seconds": "s", "sec": "s",
    "minute": "min", "minutes": "min", "hour": "h", "hours": "h", "hr": "h", "days": "day", "d": "day",
    "weeks": "week", "kmh": "km/h", "kph": "km/h", "knot": "kn", "knots": "kn", "byte": "b", "bytes": "b",
    "celsius": "c", "°c": "c", "fahrenheit": "f", "°f": "f", "kelvin": "k",
}  # fmt: skip
_TEMPERATURES = {"c", "f", "k"}


def _unit(name: str) -> str:
    key = " ".join(str(name).strip().lower().split())
    key = _ALIASES.get(key, key)
    if key not in _UNITS and key not in _TEMPERATURES:
        raise ToolInputError(f"{name!r} is not a unit this converter knows.")
    return key


def _to_kelvin(value: float, unit: str) -> float:
    return {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"c": value - 273.15, "f": (value - 273.15) * 9 / 5 + 32, "k": value}[unit]


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """`value` `from_unit` in `to_unit` (length, mass, volume, time, speed, data, temperature)."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise ToolInputError(f"{value!r} is not a number.") from None
    if not math.isfinite(amount):
        raise ToolInputError("The value must be a finite number.")
    source, target = _unit(from_unit), _unit(to_unit)
    if source in _TEMPERATURES or target in _TEMPERATURES:
        if not (source in _TEMPERATURES and target in _TEMPERATURES):
            raise ToolInputError(f"{from_unit} and {to_unit} do not measure the same thing.")
        result = _from_kelvin(_to_kelvin(amount, source), target)
    else:
        (dim_a, factor_a), (dim_b, factor_b) = _UNITS[source], _UNITS[target]
        if dim_a != dim_b:
            raise ToolInputError(f"{from_unit} ({dim_a}) cannot be converted to {to_unit} ({dim_b}).")
        result = amount * factor_a / factor_b
    return f"{format_number(amount)} {from_unit} = {format_number(round(result, 10))} {to_unit}"


# --- the tool table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineTool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., str]
    doing: Callable[[dict[str, Any]], str]  # status while it runs
    noun: str  # for the summary: "the calculator"


def _doing_calculation(args: dict[str, Any]) -> str:
    expression = args.get("expression")
    return f"Calculating {pretty_expression(expression)}" if expression else "Calculating"


def _doing_time(args: dict[str, Any]) -> str:
    return f"Looking up the time in {args.get('timezone_name') or 'UTC'}"


def _doing_conversion(args: dict[str, Any]) -> str:
    if {"value", "from_unit", "to_unit"} <= set(args):
        return f"Converting {format_number(args['value'])} {args['from_unit']} to {args['to_unit']}"
    return "Converting units"


OFFLINE_TOOLS: tuple[OfflineTool, ...] = (
    OfflineTool(
        name="calculator",
        description=(
            "Evaluate an arithmetic expression exactly. Use it for every calculation. Supports + - * / // % ** "
            "(or ^), parentheses, 'N % of M', sqrt, abs, round, min, max, sin, cos, tan, log, ln, exp, floor, "
            "ceil, pi, e."
        ),
        parameters={
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "For example (17 * 23) / 4"}},
            "required": ["expression"],
        },
        function=calculate,
        doing=_doing_calculation,
        noun="calculator",
    ),
    OfflineTool(
        name="current_time",
        description="The current date, weekday and time in an IANA time zone such as Europe/Berlin (default UTC).",
        parameters={
            "type": "object",
            "properties": {"timezone_name": {"type": "string", "description": "IANA time zone, e.g. Asia/Tokyo"}},
        },
        function=current_time,
        doing=_doing_time,
        noun="clock",
    ),
    OfflineTool(
        name="convert_units",
        description=(
            "Convert a value between units of length, mass, volume, time, speed, data size or temperature "
            "(m, km, mi, ft, in, kg, lb, oz, l, gal, cup, s, h, day, km/h, mph, MB, GiB, C, F, K, ...)."
        ),
        parameters={
            "type": "object",
            "properties": {
                "value": {"type": "number"},
                "from_unit": {"type": "string"},
                "to_unit": {"type": "string"},
            },
            "required": ["value", "from_unit", "to_unit"],
        },
        function=convert_units,
        doing=_doing_conversion,
        noun="unit converter",
    ),
)
TOOLS_BY_NAME = {t.name: t for t in OFFLINE_TOOLS}


def tool_doing(name: str, arguments: dict[str, Any]) -> str:
    tool = TOOLS_BY_NAME.get(name)
    return tool.doing(arguments or {}) if tool else f"Running {name}"


def tool_done(name: str, arguments: dict[str, Any], result: str, error: bool) -> str:
    """The done status after a tool call: what it found, in a line."""
    tool = TOOLS_BY_NAME.get(name)
    if error:
        return f"The {tool.noun if tool else name} could not do that"
    short = " ".join(str(result).split())
    short = short if len(short) <= 80 else short[:79] + "…"
    if name == "calculator" and arguments.get("expression"):
        return f"{pretty_expression(arguments['expression'])} = {short}"
    return short or f"{name} finished"


def tools_summary(used: list[str]) -> str:
    """`["calculator", "calculator", "current_time"]` as "calculator ×2, current_time"."""
    counts: dict[str, int] = {}
    for name in used:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.items())
