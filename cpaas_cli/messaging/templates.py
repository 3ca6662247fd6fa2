"""Personalised texts: `{{ first_name }}`-style variables rendered by a sandboxed jinja2.

A template is checked when the campaign is created (`validate`): syntax,
unknown filters and every variable that the contact fields or file columns do
not provide are errors then, not at sending time.

Rendering runs in jinja2's immutable sandbox with StrictUndefined (a missing
value is an error, never an empty string), None renders as an empty string,
and the language is cut down so that no template can loop, blow up memory or
spin: no loops, macros or ``set``, a short list of filters, bounded sizes and
a time budget per render (see ``messaging.sandbox``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError

from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.messaging import lookalike
from cpaas_cli.messaging.sandbox import MAX_SOURCE, MessageEnvironment, refused_construct, render_bounded
from cpaas_cli.messaging.segments import DEFAULT_CONCAT, Analysis, Concat, Encoding, Tally, analyse

MAX_PROBLEMS = 50  # problems kept when counting many rows


def _finalize(value: Any) -> Any:
    return "" if value is None else value


ENV = MessageEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize)


def _syntax_problem(exc: TemplateSyntaxError) -> InvalidInput:
    where = f"line {exc.lineno}: " if exc.lineno else ""
    problem = Problem("template", f"{where}{exc.message or exc}")
    return InvalidInput(str(problem), problems=[problem])


def variables(text: str) -> set[str]:
    """Names the template reads from its values (loop variables and `set` names excluded)."""
    try:
        return set(meta.find_undeclared_variables(ENV.parse(text)))
    except TemplateSyntaxError as exc:
        raise _syntax_problem(exc) from exc


def _refused(message: str) -> InvalidInput:
    problem = Problem("template", message)
    return InvalidInput(str(problem), problems=[problem])


@lru_cache(maxsize=256)
def compile_template(text: str) -> Template:
    """The compiled template (cached); a syntax error, unknown filter, a construct
    the sandbox does not allow (loops, macros, set…) or an over-long text is InvalidInput."""
    if len(text) > MAX_SOURCE:
        raise _refused(f"a template is at most {MAX_SOURCE} characters, this one has {len(text)}")
    try:
        refused = refused_construct(ENV.parse(text))
        if refused:
            raise _refused(f"line {refused[1]}: {refused[0]} is not allowed in a message template")
        return ENV.from_string(text)
    except TemplateSyntaxError as exc:  # TemplateAssertionError (unknown filter/test) included
        raise _syntax_problem(exc) from exc


def validate(text: str, available: Iterable[str]) -> set[str]:
    """Check a template against the variables a campaign can provide; returns the names it uses."""
    compile_template(text)
    used = variables(text)
    unknown = sorted(used - set(available))
    if unknown:
        names = ", ".join(unknown)
        problem = Problem("template", f"unknown variable{'s' if len(unknown) > 1 else ''}: {names}")
        raise InvalidInput(str(problem), problems=[problem])
    return used


def column_variable(name: str) -> str:
    """A file column or field name as a template variable: 'First Name' -> 'first_name'."""
    v = re.sub(r"\W+", "_", name.strip().lower()).strip("_")
    if not v or v[0].isdigit():
        v = f"_{v}"
    return v


def render(template: str | Template, values: Mapping[str, Any], *, row: int | None = None) -> str:
    """The text for one recipient. A missing value or a failing expression is InvalidInput."""
    tpl = compile_template(template) if isinstance(template, str) else template
    try:
        return render_bounded(tpl, values)
    except UndefinedError as exc:
        problem = Problem("template", f"missing value: {exc.message}", row)
    except SecurityError as exc:
        problem = Problem("template", f"not allowed: {exc}", row)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        problem = Problem("template", f"cannot render: {exc}", row)
    raise InvalidInput(str(problem), problems=[problem])


def _rows(rows: Iterable[Any]) -> Iterable[tuple[int, Mapping[str, Any]]]:
    for i, item in enumerate(rows, 1):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int):
            yield item
        else:
            yield i, item


def count_personalised(
    template: str | Template,
    rows: Iterable[Mapping[str, Any] | tuple[int, Mapping[str, Any]]],
    *,
    encoding: Encoding | None = None,
    concat: Concat = DEFAULT_CONCAT,
    lookalikes: bool = False,
) -> Tally:
    """Segments over every recipient's text, rendered one at a time (nothing is kept).

    `rows` are value mappings, or `(row_number, mapping)` pairs as
    `imports.readers.read_rows` yields. Rows that fail to render are collected
    and raised together (InvalidInput) after the pass.
    """
    tpl = compile_template(template) if isinstance(template, str) else template
    tally = Tally()
    problems: list[Problem] = []
    failed = 0
    for row, values in _rows(rows):
        try:
            text = render(tpl, values, row=row)
            if lookalikes:
                text = lookalike.prefer_gsm(text)
            tally.add(analyse(text, encoding=encoding, concat=concat))
        except InvalidInput as exc:
            failed += 1
            if len(problems) < MAX_PROBLEMS:
                problems.extend(p if p.row is not None else Problem(p.field, p.message, row) for p in exc.problems)
    if failed:
        raise InvalidInput(
            f"{failed} row{'s' if failed != 1 else ''} cannot be rendered; nothing was written", problems=problems
        )
    return tally


def estimate(
    text: str,
    *,
    width: int = 10,
    encoding: Encoding | None = None,
    concat: Concat = DEFAULT_CONCAT,
    lookalikes: bool = False,
) -> Analysis:
    """Segments of a template before the recipients are known: each variable counts `width` characters."""
    values = dict.fromkeys(variables(text), "x" * width)
    rendered = render(text, values)
    if lookalikes:
        rendered = lookalike.prefer_gsm(rendered)
    return analyse(rendered, encoding=encoding, concat=concat)
