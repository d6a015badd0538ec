"""A small, safe expression language for eligibility criteria, evaluated with Kleene logic.

Criteria files hold one expression per criterion, for example::

    lab(BILI) <= 3 * uln(BILI) and lab(CREAT) <= 1.6

The text is tokenised and parsed by a recursive-descent parser into a tree of tuples; nothing is
passed to Python's ``eval``. Only the operators and the functions listed in
:data:`FUNCTIONS` exist, so a criteria file cannot run code. The full grammar and function list are
in ``docs/eligibility.md``.

Three-valued (Kleene) logic, as in HL7 CQL 1.5.3 and its reference engine ``cql-execution``
(``and`` is false if any operand is false, else unknown if any is unknown, else true; ``or``
symmetrically; ``not unknown`` is unknown). Unknown is represented by ``None``; a comparison or an
arithmetic operation with an unknown operand is unknown. Numeric comparisons allow a relative
tolerance of 1e-9 so that ``3 * 1.2`` equals ``3.6`` at a bound. Text comparisons ignore case.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

#: Tree node: ("num", x) | ("str", s) | ("bool", b) | ("null",) | ("name", n) | ("list", [nodes])
#: | ("not", node) | ("and", [nodes]) | ("or", [nodes]) | ("cmp", op, a, b) | ("in", a, b, negate)
#: | ("arith", op, a, b) | ("neg", a) | ("call", name, [args], {kwargs})
Node = tuple[Any, ...]


class ExpressionError(ValueError):
    """An expression that cannot be parsed or uses an unknown name or function."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,|=)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    )""",
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


def tokenize(text: str) -> list[tuple[str, Any]]:
    pos = 0
    out: list[tuple[str, Any]] = []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"unexpected character {text[pos:pos + 10]!r} at position {pos} in {text!r}")
        pos = m.end()
        if m.group("num") is not None:
            out.append(("num", float(m.group("num"))))
        elif m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(("str", re.sub(r"\\(.)", r"\1", raw)))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            name = m.group("name")
            out.append(("kw", name) if name in _KEYWORDS else ("name", name))
    out.append(("end", None))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i]

    def take(self) -> tuple[str, Any]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, kind: str, value: Any = None) -> tuple[str, Any]:
        t = self.take()
        if t[0] != kind or (value is not None and t[1] != value):
            want = value if value is not None else kind
            raise ExpressionError(f"expected {want!r} but found {t[1]!r} in {self.text!r}")
        return t

    def is_(self, kind: str, value: Any = None) -> bool:
        t = self.peek()
        return t[0] == kind and (value is None or t[1] == value)

    def parse(self) -> Node:
        node = self.or_()
        if not self.is_("end"):
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.is_("kw", "or"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.is_("kw", "and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def not_(self) -> Node:
        if self.is_("kw", "not"):
            self.take()
            return ("not", self.not_())
        return self.cmp()

    def cmp(self) -> Node:
        left = self.sum_()
        if self.is_("op") and self.peek()[1] in ("<", "<=", ">", ">=", "==", "!="):
            op = self.take()[1]
            return ("cmp", op, left, self.sum_())
        if self.is_("kw", "in"):
            self.take()
            return ("in", left, self.sum_(), False)
        if self.is_("kw", "not") and self.toks[self.i + 1] == ("kw", "in"):
            self.take()
            self.take()
            return ("in", left, self.sum_(), True)
        return left

    def sum_(self) -> Node:
        node = self.prod()
        while self.is_("op") and self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = ("arith", op, node, self.prod())
        return node

    def prod(self) -> Node:
        node = self.unary()
        while self.is_("op") and self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = ("arith", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.is_("op", "-"):
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> Node:
        kind, val = self.take()
        if kind == "num":
            return ("num", val)
        if kind == "str":
            return ("str", val)
        if kind == "kw" and val in ("true", "false"):
            return ("bool", val == "true")
        if kind == "kw" and val == "null":
            return ("null",)
        if kind == "op" and val == "(":
            node = self.or_()
            self.expect("op", ")")
            return node
        if kind == "op" and val == "[":
            items: list[Node] = []
            if not self.is_("op", "]"):
                items.append(self.or_())
                while self.is_("op", ","):
                    self.take()
                    items.append(self.or_())
            self.expect("op", "]")
            return ("list", items)
        if kind == "name":
            if self.is_("op", "("):
                self.take()
                args: list[Node] = []
                kwargs: dict[str, Node] = {}
                if not self.is_("op", ")"):
                    while True:
                        if self.is_("name") and self.toks[self.i + 1] == ("op", "="):
                            key = self.take()[1]
                            self.take()
                            kwargs[key] = self.or_()
                        else:
                            if kwargs:
                                raise ExpressionError(f"positional argument after keyword argument in {self.text!r}")
                            args.append(self.or_())
                        if self.is_("op", ","):
                            self.take()
                            continue
                        break
                self.expect("op", ")")
                return ("call", val, args, kwargs)
            return ("name", val)
        raise ExpressionError(f"unexpected {val!r} in {self.text!r}")


def parse(text: str) -> Node:
    """Parse an expression into a tree; raises :class:`ExpressionError` with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Kleene operators
# --------------------------------------------------------------------------------------------


def k_not(a: bool | None) -> bool | None:
    return None if a is None else not a


def k_and(values: Sequence[bool | None]) -> bool | None:
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True


def k_or(values: Sequence[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    if any(v is None for v in values):
        return None
    return False


_TOL = 1e-9


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _close(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= _TOL * max(1.0, abs(a), abs(b))


def _norm(x: Any) -> Any:
    return x.strip().casefold() if isinstance(x, str) else x


def compare(op: str, a: Any, b: Any) -> bool | None:
    """``a op b`` with unknown propagation, numeric tolerance and case-insensitive text."""
    if a is None or b is None:
        return None
    if _num(a) and _num(b):
        fa, fb = float(a), float(b)
        eq = _close(fa, fb)
        if op == "==":
            return eq
        if op == "!=":
            return not eq
        if op == "<":
            return fa < fb and not eq
        if op == "<=":
            return fa < fb or eq
        if op == ">":
            return fa > fb and not eq
        if op == ">=":
            return fa > fb or eq
    a, b = _norm(a), _norm(b)
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    raise ExpressionError(f"cannot compare {a!r} {op} {b!r}")


def member(a: Any, items: Any) -> bool | None:
    """``a in items``: unknown if ``a`` is unknown, or if it is absent and some item is unknown."""
    if a is None:
        return None
    if not isinstance(items, list):
        raise ExpressionError("the right side of 'in' must be a list")
    results = [compare("==", a, x) for x in items]
    return k_or(results)


def arith(op: str, a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    if not (_num(a) and _num(b)):
        raise ExpressionError(f"arithmetic on non-numbers {a!r} {op} {b!r}")
    if op == "+":
        return float(a) + float(b)
    if op == "-":
        return float(a) - float(b)
    if op == "*":
        return float(a) * float(b)
    if b == 0:
        return None
    return float(a) / float(b)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """A function the language offers: how many positional arguments, which keywords, and which
    positional arguments are names (test codes, intervention or event kinds) rather than values."""

    name: str
    min_args: int
    max_args: int | None
    keywords: frozenset[str] = frozenset()
    symbol_args: str = ""  # "code" | "intervention" | "event" | "criterion" | "field" | "param" | ""
    doc: str = ""


Handler = Callable[[list[Any], dict[str, Any]], Any]


class Evaluator:
    """Evaluates a parsed tree; facts come from ``handlers`` (name -> callable) and ``names``."""

    def __init__(self, handlers: dict[str, Handler], names: Callable[[str], Any], touched: list[int] | None = None):
        self.handlers = handlers
        self.names = names
        self.touched = touched  # the fact accessors append the index of every evidence item they use

    def eval_decisive(self, node: Node) -> tuple[Any, set[int]]:
        """Evaluate and return the evidence indices that decided the value.

        For ``and`` that is false, only the false operands decide; for ``or`` that is true, only the
        true operands; otherwise every operand counts (all of them were needed, or are still open).
        """
        if self.touched is None:
            return self.eval(node), set()
        kind = node[0]
        if kind == "not":
            v, used = self.eval_decisive(node[1])
            return k_not(_as_bool(v)), used
        if kind in ("and", "or"):
            parts = [self.eval_decisive(n) for n in node[1]]
            vals = [_as_bool(v) for v, _ in parts]
            result = k_and(vals) if kind == "and" else k_or(vals)
            decider = kind == "or"
            chosen = [u for v, u in parts if v is decider] if result is decider else [u for _, u in parts]
            return result, set().union(*chosen) if chosen else set()
        start = len(self.touched)
        v = self.eval(node)
        return v, set(self.touched[start:])

    def eval(self, node: Node) -> Any:
        kind = node[0]
        if kind in ("num", "str", "bool"):
            return node[1]
        if kind == "null":
            return None
        if kind == "name":
            return self.names(node[1])
        if kind == "list":
            return [self.eval(n) for n in node[1]]
        if kind == "not":
            return k_not(_as_bool(self.eval(node[1])))
        if kind == "and":
            return k_and([_as_bool(self.eval(n)) for n in node[1]])
        if kind == "or":
            return k_or([_as_bool(self.eval(n)) for n in node[1]])
        if kind == "cmp":
            return compare(node[1], self.eval(node[2]), self.eval(node[3]))
        if kind == "in":
            r = member(self.eval(node[1]), self.eval(node[2]))
            return k_not(r) if node[3] else r
        if kind == "arith":
            return arith(node[1], self.eval(node[2]), self.eval(node[3]))
        if kind == "neg":
            v = self.eval(node[1])
            return None if v is None else -float(v)
        if kind == "call":
            name, args, kwargs = node[1], node[2], node[3]
            if name == "coalesce":  # lazy: later operands are not consulted (nor cited as evidence)
                for a in args:
                    val = self.eval(a)
                    if val is not None:
                        return val
                return None
            spec = FUNCTIONS[name]
            vals = [_symbol(a) if spec.symbol_args and i == 0 else self.eval(a) for i, a in enumerate(args)]
            kw = {k: self.eval(v) for k, v in kwargs.items()}
            return self.handlers[name](vals, kw)
        raise ExpressionError(f"unknown node {kind!r}")


def _as_bool(v: Any) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    raise ExpressionError(f"expected a true/false value, got {v!r}")


def _symbol(node: Node) -> Any:
    """The first argument of a fact function: a bare name, a string, or a list of them."""
    if node[0] in ("name", "str"):
        return node[1]
    if node[0] == "list":
        return [_symbol(n) for n in node[1]]
    raise ExpressionError(f"expected a name (test code, kind, criterion id), got {node!r}")


_OBS_KW = frozenset({"within", "specimen"})
_IV_KW = frozenset({"agent", "agent_contains", "within", "exclude_routes", "exclude_devices"})
_EV_KW = frozenset({"term", "term_contains", "min_grade", "within"})

#: Every function of the language (see docs/eligibility.md for their meaning).
FUNCTIONS: dict[str, FunctionSpec] = {
    s.name: s
    for s in (
        FunctionSpec("lab", 1, 1, _OBS_KW, "code", "latest numeric value (canonical unit) in the look-back window"),
        FunctionSpec("uln", 1, 1, _OBS_KW, "code", "upper limit of normal recorded with that latest value"),
        FunctionSpec("lln", 1, 1, _OBS_KW, "code", "lower limit of normal recorded with that latest value"),
        FunctionSpec("text", 1, 1, _OBS_KW, "code", "latest text result (categorical codes)"),
        FunctionSpec("flag", 1, 1, _OBS_KW, "code", "latest yes/no, positive/negative, present/absent result as true/false"),
        FunctionSpec("subject", 1, 1, frozenset(), "field", "a column of the subjects table"),
        FunctionSpec("any_intervention", 1, 1, _IV_KW, "intervention", "an intervention of these kinds started before the checkpoint (within N days)"),
        FunctionSpec("active_intervention", 1, 1, _IV_KW, "intervention", "an intervention of these kinds ongoing on the checkpoint day"),
        FunctionSpec("days_since_intervention", 1, 1, _IV_KW, "intervention", "days from the end of the last such intervention to the checkpoint (0 if ongoing, infinite if none)"),
        FunctionSpec("any_event", 1, 1, _EV_KW, "event", "an event of these kinds on or before the checkpoint (within N days)"),
        FunctionSpec("active_event", 1, 1, _EV_KW, "event", "an event of these kinds not resolved by the checkpoint"),
        FunctionSpec("attested", 0, 1, frozenset(), "criterion", "the investigator's attestation for this (or the named) criterion"),
        FunctionSpec("any_assessed", 1, None, frozenset(), "", "true if any known operand is true; unknown operands are ignored unless all are unknown"),
        FunctionSpec("coalesce", 1, None, frozenset(), "", "the first known operand"),
        FunctionSpec("known", 1, 1, frozenset(), "", "true if the operand is known, false if unknown (never unknown)"),
        FunctionSpec("floor", 1, 1, frozenset(), "", "round down (completed years of age)"),
        FunctionSpec("param", 1, 1, frozenset(), "param", "a parameter of the criteria file"),
    )
}

#: Bare names an expression may use (besides ``param.NAME`` and ``subject.FIELD``).
NAMES = {"age": "age in years at the checkpoint", "sex": "M, F or U", "diagnosis": "T-ALL, T-LBL, ETP-ALL, other"}


def walk(node: Node, symbolic: bool = False) -> Iterator[tuple[Node, bool]]:
    """Every node of a tree, depth first, with whether it stands in a symbol position: the first argument
    of a function that takes a symbol (``lab(ANC)``) names a thing and is not a value, and so is all below it."""
    yield node, symbolic
    kind = node[0]
    if kind == "call":
        spec = FUNCTIONS.get(node[1])
        takes_symbol = bool(spec and spec.symbol_args)
        for i, a in enumerate(node[2]):
            yield from walk(a, symbolic or (takes_symbol and i == 0))
        for v in node[3].values():
            yield from walk(v, symbolic)
    elif kind in ("and", "or", "list"):
        for c in node[1]:
            yield from walk(c, symbolic)
    elif kind in ("not", "neg"):
        yield from walk(node[1], symbolic)
    elif kind in ("cmp", "arith"):
        yield from walk(node[2], symbolic)
        yield from walk(node[3], symbolic)
    elif kind == "in":
        yield from walk(node[1], symbolic)
        yield from walk(node[2], symbolic)


def symbols(node: Node) -> list[tuple[str, Any, dict[str, Any]]]:
    """Every function call of a tree as (function, first argument as a symbol, keyword nodes)."""
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for n, symbolic in walk(node):
        if n[0] == "call" and not symbolic:
            spec = FUNCTIONS.get(n[1])
            out.append((n[1], _symbol(n[2][0]) if spec and spec.symbol_args and n[2] else None, n[3]))
    return out


def names_used(node: Node) -> list[str]:
    """Bare names (``age``, ``param.x``, ...) used outside function-name positions."""
    return [n[1] for n, symbolic in walk(node) if n[0] == "name" and not symbolic]


def check_calls(node: Node) -> list[str]:
    """Problems with function names and argument counts (empty list when all is well)."""
    problems: list[str] = []
    for n, symbolic in walk(node):
        if n[0] != "call" or symbolic:
            continue
        spec = FUNCTIONS.get(n[1])
        if spec is None:
            problems.append(f"unknown function {n[1]!r} (known: {', '.join(sorted(FUNCTIONS))})")
            continue
        if len(n[2]) < spec.min_args or (spec.max_args is not None and len(n[2]) > spec.max_args):
            problems.append(f"{n[1]}() takes {spec.min_args}..{spec.max_args or 'any'} arguments, got {len(n[2])}")
        bad = set(n[3]) - spec.keywords
        if bad:
            problems.append(f"{n[1]}() has no keyword {', '.join(sorted(bad))} (allowed: {', '.join(sorted(spec.keywords)) or 'none'})")
    return problems


def any_assessed(values: Sequence[Any]) -> bool | None:
    known = [_as_bool(v) for v in values if v is not None]
    if not known:
        return None
    return any(known)


def coalesce(values: Sequence[Any]) -> Any:
    return next((v for v in values if v is not None), None)


__all__ = [
    "ExpressionError",
    "FUNCTIONS",
    "FunctionSpec",
    "NAMES",
    "Evaluator",
    "parse",
    "tokenize",
    "k_and",
    "k_or",
    "k_not",
    "compare",
    "member",
    "arith",
    "symbols",
    "names_used",
    "check_calls",
    "any_assessed",
    "coalesce",
]
