"""Sandboxed Jinja templates for rule fields: compiled once at load, rendered per event."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError, meta, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.errors import MappingError


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
    return "" if value is None else value


def make_environment() -> ImmutableSandboxedEnvironment:
    """The one template environment: sandboxed, read-only, undefined names are errors."""
    return ImmutableSandboxedEnvironment(
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


def compile_template(source: str, field: str) -> Template:
    """Compile a template once (at load time).

    Raises:
        jinja2.TemplateSyntaxError: the template does not parse.
    """
    if "{" not in source:  # every Jinja construct starts with '{'
        return Template(field=field, source=source, compiled=None, paths=())
    tree = _ENV.parse(source)
    compiled = _ENV.from_string(tree)
    return Template(field=field, source=source, compiled=compiled, paths=_paths(tree))


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


def render(template: Template, ctx: dict[str, Any]) -> str:
    """Render a compiled template against an event context, stripped of outer whitespace.

    Raises:
        TemplateRenderError: a name is missing from the event (message names the path),
            or the template failed at run time (sandbox violation, type error).
    """
    if template.compiled is None:
        return template.source.strip()
    try:
        return template.compiled.render(ctx).strip()
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
