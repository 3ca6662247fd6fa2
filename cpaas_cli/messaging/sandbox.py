"""The jinja2 sandbox message templates render in, bounded by construction.

A message template personalises one SMS from one recipient's values; it has no
use for loops, and a loop is how a template spins for minutes (nested
``range`` loops, a loop over a long text inside another). So the language is
cut down to what personalisation needs, and every piece of work a template can
ask for is bounded:

- statements: only ``{% if %}`` (and ``elif``/``else``) and ``{% raw %}``.
  ``for``, ``macro``, ``call``, ``filter``, ``set``, ``with``, ``block``,
  ``include``, ``import`` and ``extends`` are refused when the template is
  compiled (InvalidInput naming the construct and its line). Without loops and
  names there is no way to repeat work: a render does a number of operations
  proportional to the template's length.
- globals: none (no ``range``, ``lipsum``, ``cycler``, ``joiner``,
  ``namespace``, ``dict``); a template that names one is told it is an unknown
  variable at validation.
- filters: a short list that cannot loop or blow up (``upper``, ``lower``,
  ``title``, ``capitalize``, ``trim``, ``truncate``, ``replace``, ``center``,
  ``default``/``d``, ``first``, ``last``, ``length``/``count``, ``int``,
  ``float``, ``round``, ``abs``, ``string``, ``wordcount``); an unknown filter
  fails validation. Method calls: only a few str methods
  (``upper()``, ``strip()``…). String formatting with ``%`` is refused.
- sizes: a template's source is at most ``MAX_SOURCE`` characters; every
  filter or call result and the rendered text are at most ``MAX_RENDERED``
  characters (checked before the work for ``replace``, ``center``, ``*`` and
  ``truncate``); powers over 64 are refused.
- time: each render has a budget (``RENDER_SECONDS``), checked at every filter,
  call and output piece, a last guard should an operation be slow.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED = 255 * 160  # more than the longest concatenated message
MAX_SOURCE = MAX_RENDERED  # characters of a template's text
RENDER_SECONDS = 1.0  # per render

# Statement nodes a message template may not use, with the name shown in the error.
REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.For: "{% for %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.With: "{% with %}",
    nodes.Block: "{% block %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% import %}",
    nodes.Extends: "{% extends %}",
    nodes.Scope: "{% scope %}",
    nodes.OverlayScope: "{% scope %}",
    nodes.ScopedEvalContextModifier: "{% autoescape %}",
    nodes.EvalContextModifier: "{% autoescape %}",
}

FILTERS = [
    "abs",
    "capitalize",
    "center",
    "count",
    "d",
    "default",
    "first",
    "float",
    "int",
    "last",
    "length",
    "lower",
    "replace",
    "round",
    "string",
    "title",
    "trim",
    "truncate",
    "upper",
    "wordcount",
]
STR_METHODS = frozenset(
    [
        "upper",
        "lower",
        "title",
        "capitalize",
        "casefold",
        "swapcase",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "isdigit",
        "isalpha",
        "isalnum",
        "isspace",
        "isupper",
        "islower",
    ]
)

_deadline: ContextVar[float | None] = ContextVar("template_deadline", default=None)


def refused_construct(tree: nodes.Template) -> tuple[str, int] | None:
    """The first construct a message template may not use, and its line; None when all are allowed."""
    for node in tree.find_all(tuple(REFUSED_STATEMENTS)):
        return REFUSED_STATEMENTS[type(node)], node.lineno
    return None


def _tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise SecurityError(f"rendering took longer than {RENDER_SECONDS:g} s")


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_RENDERED:
        raise SecurityError(f"a value longer than {MAX_RENDERED} characters")
    return value


def _guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0  # the environment or context first

    @functools.wraps(fn)  # keeps jinja_pass_arg
    def checked(*args: Any, **kwargs: Any) -> Any:
        _tick()
        given = args[skip:]
        if name == "replace" and len(given) >= 3 and all(isinstance(a, str) for a in given[:3]):
            s, old, new = given[:3]
            grows = (len(s) + 1 if old == "" else s.count(old)) * max(len(new) - len(old), 0)
            if len(s) + grows > MAX_RENDERED:
                raise SecurityError(f"replace result longer than {MAX_RENDERED} characters")
        if name in ("center", "truncate"):
            width = given[1] if len(given) > 1 else kwargs.get("width", kwargs.get("length", 0))
            if isinstance(width, int) and width > MAX_RENDERED:
                raise SecurityError(f"{name} width over {MAX_RENDERED}")
        return _bounded(fn(*args, **kwargs))

    return checked


class MessageEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the limits of the module docstring."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.globals.clear()
        self.filters = {name: _guard(name, self.filters[name]) for name in FILTERS}

    def call_binop(self, context, operator, left, right):
        _tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_RENDERED:
                    raise SecurityError("repetition result too long")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed")
        return _bounded(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's signature
        _tick()
        if isinstance(__obj, Undefined):  # a name that does not exist (no globals): jinja's own error
            return super().call(__context, __obj, *args, **kwargs)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "?")
        if not (isinstance(owner, str) and name in STR_METHODS):
            raise SecurityError(f"calling {name!r} is not allowed in a message template")
        return _bounded(super().call(__context, __obj, *args, **kwargs))


def render_bounded(template: Any, values: Any) -> str:
    """Render within the time budget and ``MAX_RENDERED`` characters of output."""
    token = _deadline.set(time.monotonic() + RENDER_SECONDS)
    try:
        out: list[str] = []
        size = 0
        for piece in template.generate(values):
            size += len(piece)
            if size > MAX_RENDERED:
                raise SecurityError(f"rendered text longer than {MAX_RENDERED} characters")
            out.append(piece)
            _tick()
        return "".join(out)
    finally:
        _deadline.reset(token)
