"""Bounded templates (issue 14, item 2): nothing computed at load, limits on steps, time,
size and recursion when rendered, and unboundable templates refused with their line."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from jinja2 import TemplateSyntaxError

from hub.config.mappings import check_rules
from hub.config.playbooks import PlaybookLibrary
from hub.core.mapping import templates
from hub.core.mapping.templates import (
    TemplateLimitExceeded,
    TemplateRenderError,
    UnboundedTemplate,
    compile_template,
    render,
)
from hub.errors import MappingError

CTX = {"ticket": {"id": 7, "n": 7, "big": 10**6, "list": list(range(200)),
                  "text": "a\nb\nc"}}

# constant expressions that used to be computed when the file loaded (26 s, 475 MB)
CONSTANT_BOMBS = [
    "{{ 7 ** 1000000 }}",
    "{{ 'x' * 10**8 }}",
    "{{ 10**8 * 'x' }}",
    "{{ [1] * 10**9 }}",
    "{{ ('x' * 900000) ~ ('y' * 900000) }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d'|format(999999999, 1) }}",
    "line one\n{{ (2 ** 100) ** 1000 }}",
]


@pytest.mark.parametrize("source", CONSTANT_BOMBS)
def test_constant_bombs_are_refused_at_load_quickly_with_a_line(source: str) -> None:
    """A constant over the limits is refused when compiled, in well under a second and
    without allocating its value."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(UnboundedTemplate) as info:
            compile_template(source, "comment.text")
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.lineno == source.count("\n") + 1
    assert "over the limits" in info.value.message
    assert peak < 20_000_000, peak
    assert elapsed < 5.0  # generous: the old code took 26 s


@pytest.mark.parametrize(("source", "reason"), [
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "calls itself"),
    ("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
     "calls itself"),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops"),
    ("{% for a in ticket.list %}{% for b in ticket.list %}{% for c in ticket.list %}"
     "{% for d in ticket.list %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
     "nested 4 deep"),
    ("{% include 'x' %}", "include"),
    ("{% import 'x' as y %}", "include"),
])
def test_unboundable_templates_are_refused_at_load(source: str, reason: str) -> None:
    """Recursion, deep loop nesting and includes are refused with a reason."""
    with pytest.raises(UnboundedTemplate) as info:
        compile_template(source, "comment.text")
    assert reason in info.value.message
    assert isinstance(info.value, TemplateSyntaxError)


@pytest.mark.parametrize("source", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n > 0 %}{{ g(n - 1) }}{{ g(n - 1) }}{% endif %}{% endmacro %}"
    "{% macro g(n) %}{{ n }}{% endmacro %}"
    "{% for i in range(100000) %}{{ f(60) }}{% endfor %}",
    "{% for a in ticket.list %}{% for b in ticket.list %}{% for c in ticket.list %}"
    "{% endfor %}{% endfor %}{% endfor %}",
])
def test_runaway_loops_stop_at_the_step_limit(source: str) -> None:
    """Nested range(100000) loops (which held a worker for ever) stop with a clear error."""
    template = compile_template(source, "tick.evidence")
    started = time.monotonic()

    with pytest.raises(TemplateLimitExceeded) as info:
        render(template, CTX)

    assert time.monotonic() - started < 10.0  # bounded by MAX_STEPS, generous for busy CI
    assert str(info.value).startswith("tick.evidence: ")
    assert isinstance(info.value, MappingError)


@pytest.mark.parametrize("source", [
    "{{ ticket.n ** 1000000 }}",
    "{{ 'x' * ticket.big * 10 }}",
    "{{ 'xy'|replace('', 'z' * 1000)|replace('', 'z' * 1000) }}",
    "{% set s = namespace(v='x' * 1000) %}{% for i in range(40) %}"
    "{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v|length }}",
    "{{ ticket.text|indent(ticket.big) }}",
    "{{ ('x' * 100000) ~ ('y' * 100000) }}",
    "{{ [ticket.text * 1000] * 1000 }}",
])
def test_size_limits_stop_amplification(source: str) -> None:
    """Values and output past the size limits raise instead of allocating them."""
    template = compile_template(source, "comment.text")

    with pytest.raises(TemplateLimitExceeded):
        render(template, CTX)


def test_the_deadline_stops_a_slow_render() -> None:
    """A render past its time budget stops at the next step."""
    # Given a timer that jumps past the deadline after a few reads
    reads = iter(range(0, 10_000, 1))
    template = compile_template("{% for i in range(50) %}{{ i }}{% endfor %}", "comment.text")

    # When it renders with that timer
    with pytest.raises(TemplateLimitExceeded) as info:
        render(template, CTX, timer=lambda: float(next(reads)))

    # Then the time limit is named
    assert "s (" in str(info.value)


def test_python_recursion_becomes_a_limit_error() -> None:
    """A recursion the static check cannot see (a macro passed as a value) is a clear error."""
    source = ("{% macro f(g) %}{{ g(g) }}{% endmacro %}{{ f(f) }}")
    template = compile_template(source, "comment.text")

    with pytest.raises(TemplateRenderError):
        render(template, CTX)


def test_amplifying_str_methods_are_refused() -> None:
    """``'x'.center(10**9)`` and friends are sandbox violations (the filters are bounded)."""
    template = compile_template("{{ 'x'.center(ticket.big * 1000) }}", "comment.text")

    with pytest.raises(TemplateRenderError):
        render(template, CTX)


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ ticket.n ** 2 }}", "49"),
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ ticket.list|length }} items", "200 items"),
    ("{% for i in ticket.list[:3] %}{{ i }},{% endfor %}", "0,1,2,"),
    ("{{ 'a' ~ ticket.id ~ 'b' }}", "a7b"),
    ("{{ '%05d'|format(ticket.id) }}", "00007"),
    ("{{ ticket.text|indent(2) }}", "a\n  b\n  c"),
    ("{{ 'Hello %s' % 'Ann' }}", "Hello Ann"),
    ("{{ -ticket.n }}", "-7"),
    ("{% macro hi(n) %}hi {{ n }}{% endmacro %}{{ hi(ticket.id) }}", "hi 7"),
])
def test_ordinary_templates_still_render(source: str, expected: str) -> None:
    """The bounds leave everyday templates alone."""
    assert render(compile_template(source, "comment.text"), CTX) == expected


def test_the_budget_is_per_render() -> None:
    """Steps do not accumulate across renders: many small renders all succeed."""
    template = compile_template("{% for i in range(1000) %}{% endfor %}ok", "comment.text")

    results = {render(template, CTX) for _ in range(3 * templates.MAX_STEPS // 1000)}

    assert results == {"ok"}


def test_mappings_file_with_a_bomb_is_refused_with_file_and_line(
        tmp_path: Path, library: PlaybookLibrary) -> None:
    """``mappings check`` (the loader) names the file, line and field of a bomb template."""
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "rules:\n"
        "  - id: bomb\n"
        "    on: ticket.created\n"
        "    comment:\n"
        "      text: \"{{ 7 ** 1000000 }}\"\n"
    )

    errors = check_rules([path], library)

    assert len(errors) == 1
    assert (errors[0].file, errors[0].line, errors[0].key) == (str(path), 5, "rules.0.comment.text")
    assert "over the limits" in errors[0].message
