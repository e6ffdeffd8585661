"""Sandboxed, bounded Jinja templates for rule fields: compiled once at load, rendered per event.

A template is admin-written, but it runs in a worker on every matching event, so it is
*bounded* (issue 14):

* at load, nothing is computed: operators go through :meth:`BoundedEnvironment.call_binop`,
  which Jinja never folds into constants, and :func:`compile_template` refuses (as a
  ``TemplateSyntaxError`` with its line, so ``msphub mappings check`` names file and line)
  what cannot be bounded: a constant expression over the limits (``{{ 7 ** 1000000 }}``,
  ``{{ 'x' * 10**8 }}``), recursive macros or loops, loops nested more than
  :data:`MAX_LOOP_NESTING` deep, ``include``/``import``/``extends``;
* rendering counts *steps* (each loop iteration, call, filter and operator) and checks a
  deadline at each step, bounds every intermediate string/list (:data:`MAX_VALUE`) and
  the output (:data:`MAX_OUTPUT`), and turns Python's recursion limit into an error.
  Exceeding a limit raises :class:`TemplateLimitExceeded` (a ``MappingError``), so the
  event fails visibly and is not retried.

The deadline reads a monotonic timer (a resource limit, not business time; no wall clock).
"""

from __future__ import annotations

import contextvars
import functools
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from hub.errors import MappingError

MAX_STEPS = 10_000  # loop iterations + calls + filters + operators, per render
MAX_SECONDS = 1.0  # per render
MAX_VALUE = 1_000_000  # characters (or items) of any intermediate string or list
MAX_OUTPUT = 65_536  # characters of a rendered field
MAX_INT_BITS = 10_000  # integers computed by * and ** (str() of more digits fails anyway)
MAX_LOOP_NESTING = 3
# str methods that amplify their input (the bounded filters do the same jobs)
_AMPLIFYING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace",
                                 "join", "format", "format_map", "translate", "encode"})
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d{4,})")


class StrictChainableUndefined(StrictUndefined):
    """StrictUndefined that lets ``a.b.c | default('x')`` work on a missing ``a.b``.

    Attribute and item access on an undefined value return the same undefined value, so
    ``default`` and ``is defined`` can rescue a missing chain; printing, comparing,
    iterating or testing it for truth still raises, as with plain StrictUndefined.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, name: Any) -> Any:
        return self


def _finalize(value: Any) -> Any:
    # A present-but-null field renders as "" (not "None"), so a required input stays missing.
    if isinstance(value, list | tuple | dict | set) and _size(value, MAX_OUTPUT) > MAX_OUTPUT:
        raise _LimitHit(f"output would exceed {MAX_OUTPUT} characters")
    return "" if value is None else value


class _LimitHit(Exception):  # an internal signal, converted at the render boundary
    """Raised inside a render (or a load-time constant check) when a limit is reached."""


class UnboundedTemplate(TemplateSyntaxError):
    """A template that cannot be bounded; refused at load with its line."""


@dataclass
class _Budget:
    steps_left: int
    deadline: float
    timer: Callable[[], float]

    def tick(self, what: str) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise _LimitHit(f"template exceeded {MAX_STEPS} steps ({what})")
        if self.timer() > self.deadline:
            raise _LimitHit(f"template exceeded {MAX_SECONDS:g} s ({what})")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "msphub_template_budget", default=None)


def _tick(what: str) -> None:
    budget = _BUDGET.get()
    if budget is not None:  # rendering; at load time nothing is computed anyway
        budget.tick(what)


def _size(value: Any, limit: int = MAX_VALUE) -> int:
    """Roughly how many characters ``value`` renders to, counting at most past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | dict) and _size(value) > MAX_VALUE:
        raise _LimitHit(f"{what} would exceed {MAX_VALUE} characters")
    if isinstance(value, int) and not isinstance(value, bool) and (
            value.bit_length() > MAX_INT_BITS):
        raise _LimitHit(f"{what} would exceed {MAX_INT_BITS} bits")
    return value


def _check_format(fmt: Any, what: str) -> None:
    """Refuse printf/format widths past the limit (``'%999999999d'``, ``'%*s'``)."""
    if not isinstance(fmt, str):
        return
    for star_or_width, precision in _PERCENT_WIDTH.findall(fmt):
        for part in (star_or_width, precision):
            if part == "*" or (part and int(part) > MAX_OUTPUT):
                raise _LimitHit(f"{what}: format width over {MAX_OUTPUT}")
    if _BRACE_WIDTH.search(fmt):
        raise _LimitHit(f"{what}: format width over 999")


def _pow(base: Any, exponent: Any) -> Any:
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS):
        raise _LimitHit(f"** result would exceed {MAX_INT_BITS} bits")
    return base**exponent


def _mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                and len(seq) * max(times, 0) > MAX_VALUE):
            raise _LimitHit(f"* result would exceed {MAX_VALUE} characters")
    if isinstance(left, int) and isinstance(right, int) and (
            left.bit_length() + right.bit_length() > MAX_INT_BITS):
        raise _LimitHit(f"* result would exceed {MAX_INT_BITS} bits")
    return left * right


def _mod(left: Any, right: Any) -> Any:
    _check_format(left, "%")
    return left % right


def _add(left: Any, right: Any) -> Any:
    if (isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            and _size(left) + _size(right) > MAX_VALUE):
        raise _LimitHit(f"+ result would exceed {MAX_VALUE} characters")
    return left + right


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add, "-": operator.sub, "*": _mul, "/": operator.truediv,
    "//": operator.floordiv, "%": _mod, "**": _pow,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter that counts a step, refuses amplifying arguments and checks size."""

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick(f"filter {name}")
        values = [a for a in args if not hasattr(a, "environment")]  # skip ctx/env args
        value = values[0] if values else None
        if name in ("center", "indent", "wordwrap", "truncate", "format", "replace", "join",
                    "batch", "slice", "filesizeformat", "urlize", "xmlattr", "pprint",
                    "tojson", "string", "list"):
            _check_size(value, f"filter {name} input")
        if name == "center":
            width = values[1] if len(values) > 1 else kwargs.get("width", 80)
            if not isinstance(width, int) or width > MAX_OUTPUT:
                raise _LimitHit(f"filter center: width over {MAX_OUTPUT}")
        if name == "indent":
            width = values[1] if len(values) > 1 else kwargs.get("width", 4)
            lines = str(value).count("\n") + 1
            pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
            if pad * lines + len(str(value)) > MAX_VALUE:
                raise _LimitHit(f"filter indent: result over {MAX_VALUE}")
        if name == "format":
            _check_format(value, "filter format")
        if name == "replace" and len(values) > 2:
            old, new = str(values[1]), str(values[2])
            hits = str(value).count(old) if old else len(str(value)) + 1
            if len(str(value)) + hits * len(new) > MAX_VALUE:
                raise _LimitHit(f"filter replace: result over {MAX_VALUE}")
        if name in ("batch", "slice") and len(values) > 1 and (
                not isinstance(values[1], int) or values[1] > MAX_VALUE):
            raise _LimitHit(f"filter {name}: size over {MAX_VALUE}")
        if name == "wordwrap":
            width = values[1] if len(values) > 1 else kwargs.get("width", 79)
            if not isinstance(width, int) or width < 1:
                raise _LimitHit("filter wordwrap: width must be a positive integer")
        return _check_size(func(*args, **kwargs), f"filter {name} result")

    return bounded


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with every operator intercepted (so never folded at load) and bounded."""

    intercepted_binops = frozenset(_BINOPS)
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = _bounded_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Every binary operator: one step, bounded result."""
        _tick(f"operator {operator}")
        return _check_size(_BINOPS[operator](left, right), f"operator {operator}")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        """Unary + and -: one step."""
        _tick(f"operator {operator}")
        return -arg if operator == "-" else +arg

    def call(__self, __context: Any, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        """Every call (macros, methods, globals): one step, bounded result."""
        _tick("call")
        return _check_size(super().call(__context, __obj, *args, **kwargs), "call result")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Also refuse str methods that amplify their input (use the bounded filters)."""
        if isinstance(obj, str) and attr in _AMPLIFYING_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def msphub_loop(self, iterable: Any) -> Iterator[Any]:
        """What every ``{% for %}`` iterates: the iterable, one step per item."""
        for item in iterable:
            _tick("loop iteration")
            yield item

    def msphub_concat(self, *parts: Any) -> str:
        """``a ~ b``: bounded."""
        text = "".join(str(p) for p in parts) if _size(parts) <= MAX_VALUE else None
        if text is None:
            raise _LimitHit(f"~ result would exceed {MAX_VALUE} characters")
        return text


def _bounded_range(*args: int) -> Iterable[int]:
    rng = range(*args)
    if len(rng) > MAX_VALUE:
        raise _LimitHit(f"range of {len(rng)} items exceeds {MAX_VALUE}")
    return rng


def make_environment() -> BoundedEnvironment:
    """The one template environment: sandboxed, read-only, bounded, undefined names are errors."""
    return BoundedEnvironment(
        undefined=StrictChainableUndefined,
        autoescape=False,
        finalize=_finalize,
    )


_ENV = make_environment()
_MISSING_NAME = re.compile(
    r"(?:^'(?P<top>[^']+)' is undefined$)|(?:has no (?:attribute|element) '(?P<attr>[^']+)'$)"
)


@dataclass(frozen=True)
class Template:
    """One compiled rule field, e.g. ``launch.inputs.leaver_name``.

    Attributes:
        field: where the template sits in its rule (for error messages).
        source: the template text as written.
        paths: dotted context paths it reads (``ticket.contact.name``), to name a missing one.
    """

    field: str
    source: str
    compiled: JinjaTemplate | None  # None: plain text without any Jinja syntax
    paths: tuple[str, ...]


class TemplateRenderError(MappingError):
    """A rule template could not be rendered for an event.

    Attributes:
        field: the rule field (``tick.evidence``).
        missing: the dotted path that was missing from the event, when known.
    """

    def __init__(self, message: str, *, field: str, missing: str | None = None) -> None:
        self.field = field
        self.missing = missing
        super().__init__(message)


class TemplateLimitExceeded(TemplateRenderError):
    """A template went past a render limit (steps, time, output size or recursion)."""


def compile_template(source: str, field: str) -> Template:
    """Compile a template once (at load time); nothing in it is computed.

    Raises:
        jinja2.TemplateSyntaxError: the template does not parse, or it cannot be bounded
            (:class:`UnboundedTemplate`, with the line at fault).
    """
    if "{" not in source:  # every Jinja construct starts with '{'
        return Template(field=field, source=source, compiled=None, paths=())
    try:
        tree = _ENV.parse(source)
        _refuse_unbounded(tree)
        paths = _paths(tree)
        _instrument(tree)
        compiled = _ENV.from_string(tree)
    except RecursionError:
        raise UnboundedTemplate("template is nested too deeply", 1) from None
    return Template(field=field, source=source, compiled=compiled, paths=paths)


_UNKNOWN: Any = object()


def _const(node: nodes.Node) -> Any:
    """The value of a constant expression, computed with the bounded operators, or _UNKNOWN."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_const(n) for n in node.items]
        if any(i is _UNKNOWN for i in items):
            return _UNKNOWN
        return items if isinstance(node, nodes.List) else tuple(items)
    if isinstance(node, nodes.BinExpr) and node.operator in _BINOPS:
        left, right = _const(node.left), _const(node.right)
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        return _check_size(_BINOPS[node.operator](left, right), f"operator {node.operator}")
    if isinstance(node, nodes.Concat):
        parts = [_const(n) for n in node.nodes]
        if any(p is _UNKNOWN for p in parts):
            return _UNKNOWN
        return _ENV.msphub_concat(*parts)
    if isinstance(node, nodes.Filter) and node.node is not None:
        func = _ENV.filters.get(node.name)
        if func is None or getattr(func, "jinja_pass_arg", None) is not None:
            return _UNKNOWN
        value = _const(node.node)
        args = [_const(a) for a in node.args]
        kwargs = {str(k.key): _const(k.value) for k in node.kwargs}
        if node.dyn_args or node.dyn_kwargs or _UNKNOWN in (value, *args, *kwargs.values()):
            return _UNKNOWN
        return func(value, *args, **kwargs)
    return _UNKNOWN


def _loop_nesting(node: nodes.Node, depth: int = 0) -> tuple[int, int]:
    """(deepest ``for`` nesting under ``node``, line of the deepest loop)."""
    deepest, line = depth, getattr(node, "lineno", 1)
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.For) else depth
        found, at = _loop_nesting(child, inner)
        if found > deepest:
            deepest, line = found, at
    return deepest, line


def _macro_cycle(tree: nodes.Template) -> nodes.Macro | None:
    """A macro that can reach itself through calls (directly or through other macros)."""
    macros = {m.name: m for m in tree.find_all(nodes.Macro)}
    calls = {name: {c.node.name for c in m.find_all(nodes.Call)
                    if isinstance(c.node, nodes.Name) and c.node.name in macros}
             for name, m in macros.items()}
    for start, macro in macros.items():
        seen, todo = set(), list(calls[start])
        while todo:
            name = todo.pop()
            if name == start:
                return macro
            if name not in seen:
                seen.add(name)
                todo.extend(calls[name])
    return None


def _refuse_unbounded(tree: nodes.Template) -> None:
    """Refuse at load what no render limit can make safe, or what is over a limit already.

    Raises:
        UnboundedTemplate: naming the line.
    """
    for stmt in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        raise UnboundedTemplate("include, import and extends are not available in rules",
                                stmt.lineno)
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise UnboundedTemplate("recursive loops are not allowed", loop.lineno)
    deepest, line = _loop_nesting(tree)
    if deepest > MAX_LOOP_NESTING:
        raise UnboundedTemplate(
            f"loops nested {deepest} deep (at most {MAX_LOOP_NESTING})", line)
    macro = _macro_cycle(tree)
    if macro is not None:
        raise UnboundedTemplate(f"macro '{macro.name}' calls itself (recursion)", macro.lineno)
    for node in tree.find_all((nodes.BinExpr, nodes.Concat, nodes.Filter)):
        try:
            _const(node)
        except _LimitHit as exc:
            raise UnboundedTemplate(f"constant expression over the limits: {exc}",
                                    node.lineno) from None
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError):
            continue  # fails when rendered, with the field named


class _Instrument(NodeTransformer):
    """Route every loop's iterable and every ``~`` through the bounded environment."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """``for x in it`` → ``for x in environment.msphub_loop(it)``."""
        self.generic_visit(node)  # transforms the children in place
        node.iter = _env_call("msphub_loop", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        """``a ~ b`` → ``environment.msphub_concat(a, b)``."""
        self.generic_visit(node)
        return _env_call("msphub_concat", list(node.nodes), node.lineno)


def _instrument(tree: nodes.Template) -> None:
    _Instrument().visit(tree)


def _env_call(method: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(method), args, [], None, None)
    call.set_lineno(lineno)
    call.set_environment(_ENV)
    return call


def _chain(node: nodes.Node) -> list[str] | None:
    """``ticket.contact['name']`` → ["ticket", "contact", "name"]; None if not a plain chain."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            if not (isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int)):
                return None
            parts.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return parts[::-1]
        else:
            return None


def _paths(tree: nodes.Template) -> tuple[str, ...]:
    roots = meta.find_undeclared_variables(tree)
    found: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        parts = _chain(node)
        if not parts or parts[0] not in roots:
            continue
        path = ".".join(parts)
        if not any(p == path or p.startswith(path + ".") for p in found):
            found.append(path)
    return tuple(found)


def _missing_prefix(ctx: dict[str, Any], path: str) -> tuple[str, str] | None:
    """The first missing part of ``path`` in ``ctx`` as (dotted prefix, segment), or None."""
    current: Any = ctx
    done: list[str] = []
    for part in path.split("."):
        done.append(part)
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return ".".join(done), part
    return None


def _explain_undefined(template: Template, ctx: dict[str, Any], jinja_message: str) -> str | None:
    match = _MISSING_NAME.search(jinja_message)
    name = (match.group("top") or match.group("attr")) if match else None
    candidates = [m for m in (_missing_prefix(ctx, p) for p in template.paths) if m]
    for prefix, segment in candidates:
        if name is None or segment == name:
            return prefix
    return candidates[0][0] if candidates else name


def render(template: Template, ctx: dict[str, Any], *,
           timer: Callable[[], float] = time.monotonic) -> str:
    """Render a compiled template against an event context, stripped of outer whitespace.

    Raises:
        TemplateRenderError: a name is missing from the event (message names the path),
            or the template failed at run time (sandbox violation, type error).
        TemplateLimitExceeded: it went past a limit (steps, time, size, recursion).
    """
    if template.compiled is None:
        return template.source.strip()
    budget = _Budget(steps_left=MAX_STEPS, deadline=timer() + MAX_SECONDS, timer=timer)
    token = _BUDGET.set(budget)
    try:
        return _generate(template.compiled, ctx).strip()
    except _LimitHit as exc:
        raise TemplateLimitExceeded(f"{template.field}: {exc}", field=template.field) from None
    except (RecursionError, MemoryError):
        raise TemplateLimitExceeded(f"{template.field}: template recursion or memory limit",
                                    field=template.field) from None
    except TemplateError as exc:
        message = exc.message or str(exc)
        missing = None
        if isinstance(exc, UndefinedError):
            missing = _explain_undefined(template, ctx, message)
        if missing:
            raise TemplateRenderError(
                f"{template.field}: '{missing}' is missing from the event ({message})",
                field=template.field,
                missing=missing,
            ) from exc
        raise TemplateRenderError(f"{template.field}: {message}", field=template.field) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateRenderError(f"{template.field}: {exc}", field=template.field) from exc
    finally:
        _BUDGET.reset(token)


def _generate(compiled: JinjaTemplate, ctx: dict[str, Any]) -> str:
    out: list[str] = []
    size = 0
    for chunk in compiled.generate(ctx):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise _LimitHit(f"output exceeds {MAX_OUTPUT} characters")
        out.append(chunk)
    return "".join(out)
