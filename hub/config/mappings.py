"""Load mapping files into a RuleSet; every error names the file, line, field and rule id."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from hub.config.messages import admin_message
from hub.config.playbooks import PlaybookLibrary
from hub.config.rule_checks import field_problems, source_problems
from hub.config.yamlio import YamlDoc, parse_yaml
from hub.core.conditions import OPERATORS, ConditionSyntaxError, parse_condition
from hub.core.mapping.engine import CompiledRule, RuleSet
from hub.core.mapping.fields import FieldCatalog
from hub.core.mapping.schema import Rule
from hub.core.mapping.templates import Template, compile_template
from hub.core.suggest import hint
from hub.errors import ConfigError, Loc

SUFFIXES = (".yaml", ".yml")
TemplateCache = dict[tuple[str, str], Template]
"""Compiled templates by (text, field) within one load: rules repeat the same texts."""
_ID_LINE = re.compile(r"^\s*(?:-\s+)?id:\s*['\"]?([^'\"#\s]+)")


def mapping_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their *.yaml / *.yml files (sorted by name); keep files."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


def load_rules(
    directory: Path, library: PlaybookLibrary, *, sources: Collection[str] | None = None,
    catalog: FieldCatalog | None = None,
) -> RuleSet:
    """Load every mapping file in a directory.

    Args:
        directory: the mappings directory; a missing directory means no rules.
        library: the playbooks that rules may launch, tick, comment on or cancel.
        sources: when given, every name ``from`` may use: pass all registered connector
            vendors (configured or not, so shipped rules naming an RMM you do not run
            still load) plus the configured instance names. Catches typos.
        catalog: when given, the fields each source's events carry: a rule reading a
            field no source in its ``from:`` emits is refused (and, without ``sources``,
            ``from:`` must name one of the catalog's vendors or instances).

    Raises:
        ConfigError: the first problem found; a broken file never half-loads.
    """
    if not directory.exists():
        return RuleSet()
    ruleset, errors = compile_files([directory], library, sources=sources, catalog=catalog)
    if errors:
        raise errors[0]
    return ruleset


def check_rules(
    paths: Iterable[Path], library: PlaybookLibrary, *, sources: Collection[str] | None = None,
    catalog: FieldCatalog | None = None,
) -> list[ConfigError]:
    """Validate mapping files and directories, collecting every error (for the CLI)."""
    return compile_files(paths, library, sources=sources, catalog=catalog)[1]


def compile_files(
    paths: Iterable[Path], library: PlaybookLibrary, *, sources: Collection[str] | None = None,
    catalog: FieldCatalog | None = None,
) -> tuple[RuleSet, list[ConfigError]]:
    """Compile files into a RuleSet of the valid rules, plus every error found."""
    files = mapping_files(paths)
    compiled: list[CompiledRule] = []
    errors: list[ConfigError] = []
    seen: dict[str, str] = {}
    templates: TemplateCache = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            errors.append(ConfigError(f"cannot read file: {exc.strerror}", file=str(path)))
            continue
        rules, file_errors = parse_rules(text, str(path), library, sources=sources,
                                         templates=templates, catalog=catalog)
        errors.extend(file_errors)
        for rule in rules:
            if rule.id in seen:
                errors.append(
                    ConfigError(
                        f"rule '{rule.id}': id is already used in {seen[rule.id]}",
                        file=rule.file,
                        line=rule.line,
                        key=f"rules.{rule.index}.id",
                    )
                )
                continue
            seen[rule.id] = f"{rule.file}:{rule.line}" if rule.line else rule.file
            compiled.append(rule)
    return RuleSet(compiled, [str(f) for f in files]), errors


def parse_rules(
    text: str,
    file: str,
    library: PlaybookLibrary,
    *,
    sources: Collection[str] | None = None,
    templates: TemplateCache | None = None,
    catalog: FieldCatalog | None = None,
) -> tuple[list[CompiledRule], list[ConfigError]]:
    """Validate and compile the rules of one mapping document.

    Args:
        text: the YAML document.
        file: its name, for errors.
        library: the playbooks rules may name.
        sources: when given, every name ``from`` may use.
        templates: compiled templates to reuse and add to (one load shares one cache).
        catalog: when given, the fields rules may read (see ``load_rules``).

    Returns:
        The valid rules and every error; a caller that wants all-or-nothing checks errors.
    """
    try:
        doc = parse_yaml(text, file)
    except ConfigError as exc:
        rule_id = _rule_near(text, exc.line)
        if rule_id:
            exc = ConfigError(f"rule '{rule_id}': {exc.message}", file=exc.file, line=exc.line,
                              key=exc.key)
        return [], [exc]
    data = doc.data
    if data is None:
        return [], []
    if not isinstance(data, dict):
        return [], [doc.error("a mapping file must be a mapping with a 'rules' list")]
    unknown = [k for k in data if k != "rules"]
    if unknown:
        key = str(unknown[0])
        return [], [doc.error(f"unknown top-level key '{key}'{hint(key, ['rules'])} "
                              "(allowed: rules)", (key,))]
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        return [], [doc.error("'rules' must be a list of rules", ("rules",))]
    out: list[CompiledRule] = []
    errors: list[ConfigError] = []
    known = sources if sources is not None else (catalog.names() if catalog else None)
    cache: TemplateCache = {} if templates is None else templates
    for index, raw in enumerate(raw_rules):
        rule_errors: list[ConfigError] = []
        compiled = _compile_rule(doc, index, raw, library, _Checks(known, catalog), cache,
                                 rule_errors)
        errors.extend(rule_errors)
        if compiled is not None and not rule_errors:
            out.append(compiled)
    return out, errors


def _rule_near(text: str, line: int | None) -> str | None:
    """The id of the rule written above ``line`` (to name it in a YAML syntax error)."""
    if line is None:
        return None
    found = None
    for row in text.splitlines()[:line]:
        match = _ID_LINE.match(row)
        if match:
            found = match.group(1)
    return found


def _label(raw: Any, index: int) -> str:
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    return f"rule '{rule_id}'" if isinstance(rule_id, str) and rule_id else f"rule #{index + 1}"


@dataclass(frozen=True)
class _Checks:
    """What a rule is checked against besides the playbooks: ``from:`` names, fields."""

    sources: Collection[str] | None
    catalog: FieldCatalog | None


def _compile_rule(
    doc: YamlDoc,
    index: int,
    raw: Any,
    library: PlaybookLibrary,
    checks: _Checks,
    cache: TemplateCache,
    errors: list[ConfigError],
) -> CompiledRule | None:
    base: Loc = ("rules", index)
    label = _label(raw, index)

    def fail(message: str, *loc: str | int) -> None:
        err = doc.error(f"{label}: {message}", (*base, *loc))
        errors.append(err)

    if not isinstance(raw, dict):
        fail("each rule must be a mapping (id, on, an action ...)")
        return None
    if True in raw and "on" not in raw:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        raw = {("on" if k is True else k): v for k, v in raw.items()}
    try:
        rule = Rule.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            message = admin_message(err, Rule)
            clean = _doc_loc(doc, base, loc)
            errors.append(
                ConfigError(
                    f"{label}: {message}",
                    file=doc.file,
                    line=doc.line(clean),
                    key=".".join(str(p) for p in (*base, *loc)),
                )
            )
        return None

    try:
        condition = parse_condition(rule.if_, (*base, "if"))
    except ConditionSyntaxError as exc:
        errors.append(doc.error(f"{label}: {_operator_hint(exc)}", exc.loc))
        return None

    if checks.sources is not None:
        for message, loc in source_problems(rule, checks.sources):
            fail(message, *loc)

    _check_playbooks(rule, library, fail)

    templates: dict[str, Template] = {}
    for fld, source in _template_fields(rule):
        try:
            cached = cache.get((source, fld))
            if cached is None:
                cached = cache[(source, fld)] = compile_template(source, fld)
            templates[fld] = cached
        except TemplateSyntaxError as exc:
            where = f" (template line {exc.lineno})" if "\n" in source.strip() else ""
            fail(f"template error in {fld}{where}: {exc.message}", *fld.split("."))
    if checks.catalog is not None:
        for message, loc in field_problems(rule, templates, checks.catalog):
            fail(message, *loc)
    if errors:
        return None
    return CompiledRule(
        rule=rule,
        file=doc.file,
        line=doc.line(base),
        index=index,
        condition=condition,
        templates=templates,
    )


def _operator_hint(exc: ConditionSyntaxError) -> str:
    """The condition error, with "did you mean" for a misspelt operator."""
    text = str(exc)
    op = exc.loc[-1] if exc.loc else None
    if text.startswith("unknown operator") and isinstance(op, str):
        suggestion = hint(op, OPERATORS)
        if suggestion:
            return text.replace(f"'{op}'", f"'{op}'{suggestion}", 1)
    return text


def _doc_loc(doc: YamlDoc, base: Loc, loc: Loc) -> Loc:
    """Keep the parts of a pydantic loc that exist in the document (drops union tags)."""
    clean: list[str | int] = list(base)
    for part in loc:
        if (*clean, part) in doc.lines or isinstance(part, int):
            clean.append(part)
    return tuple(clean)


def _template_fields(rule: Rule) -> list[tuple[str, str]]:
    """Every (field path, template text) of a rule."""
    out: list[tuple[str, str]] = []
    if rule.launch is not None:
        if rule.launch.client is not None:
            out.append(("launch.client", rule.launch.client))
        for name, value in rule.launch.inputs.items():
            if isinstance(value, str):
                out.append((f"launch.inputs.{name}", value))
    if rule.tick is not None and rule.tick.evidence is not None:
        out.append(("tick.evidence", rule.tick.evidence))
    if rule.comment is not None:
        out.append(("comment.text", rule.comment.text))
    if rule.cancel is not None:
        out.append(("cancel.reason", rule.cancel.reason))
    if rule.notify is not None:
        out.append(("notify.text", rule.notify.text))
        if rule.notify.subject is not None:
            out.append(("notify.subject", rule.notify.subject))
    if rule.note is not None:
        out.append(("note.text", rule.note.text))
    return out


def _check_playbooks(rule: Rule, library: PlaybookLibrary, fail: Callable[..., None]) -> None:
    """Playbooks, steps and launch inputs a rule names must exist in the library."""
    known = ", ".join(sorted(library.playbooks)) or "none loaded"

    def exists(playbook_id: str, *loc: str | int) -> bool:
        if playbook_id in library:
            return True
        fail(f"unknown playbook '{playbook_id}' (known: {known})", *loc)
        return False

    if rule.launch is not None:
        spec = rule.launch
        if exists(spec.playbook, "launch", "playbook"):
            playbook = library.get(spec.playbook)
            declared = {i.id: i for i in playbook.inputs}
            for name in spec.inputs:
                if name not in declared:
                    allowed = ", ".join(declared) or "none"
                    fail(
                        f"playbook '{playbook.id}' has no input '{name}' (inputs: {allowed})",
                        "launch", "inputs", name,
                    )
            for item in playbook.inputs:
                if item.required and item.default is None and item.id not in spec.inputs:
                    fail(
                        f"playbook '{playbook.id}' requires input '{item.id}' ({item.title})",
                        "launch", "inputs" if spec.inputs else "playbook",
                    )
    if rule.tick is not None:
        for i, playbook_id in enumerate(rule.tick.playbook):
            if exists(playbook_id, "tick", "playbook", i):
                steps = [s.id for s in library.get(playbook_id).steps]
                if rule.tick.step not in steps:
                    fail(
                        f"playbook '{playbook_id}' has no step '{rule.tick.step}' "
                        f"(steps: {', '.join(steps)})",
                        "tick", "step",
                    )
    for name in ("comment", "cancel"):
        spec_ = getattr(rule, name)
        if spec_ is not None:
            for i, playbook_id in enumerate(spec_.playbook or ()):
                exists(playbook_id, name, "playbook", i)
