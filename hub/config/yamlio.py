"""YAML loading that remembers where every value came from, for errors that name file and line."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from hub.config.messages import admin_message, misspelt_key
from hub.errors import ConfigError, Loc

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class YamlDoc:
    """A parsed YAML document plus the 1-based line of each value, by path."""

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Iterable[str | int]) -> int | None:
        """Best line for a path: the deepest prefix of ``loc`` that has one."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, message: str, loc: Iterable[str | int] = ()) -> ConfigError:
        """A ConfigError pointing at ``loc`` in this file."""
        path = tuple(loc)
        key = ".".join(str(p) for p in path) or None
        return ConfigError(message, file=self.file, line=self.line(path), key=key)


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), lines)


_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _compose(loader_class: Any, text: str) -> tuple[yaml.Node | None, Any]:
    """Parse once: the node tree (for line numbers) and the data constructed from it."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _load(text: str) -> tuple[yaml.Node | None, Any]:
    """libyaml when installed (~10x faster); errors come from the pure-Python parser.

    A document libyaml rejects is parsed again by PyYAML's own parser, so the message and
    line a ConfigError reports are the same with or without libyaml.
    """
    if _FAST_LOADER is not None:
        try:
            return _compose(_FAST_LOADER, text)
        except yaml.YAMLError:
            pass
    return _compose(yaml.SafeLoader, text)


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse YAML text (safe loader) and index line numbers.

    Raises:
        ConfigError: on a syntax error, with the line the parser stopped at.
    """
    try:
        node, data = _load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file) from exc
    lines: dict[Loc, int] = {}
    if node is not None:
        _index(node, (), lines)
    return YamlDoc(file=file, data=data, lines=lines)


def read_yaml(path: Path | str) -> YamlDoc:
    """Read and parse one YAML file.

    Raises:
        ConfigError: the file cannot be read or parsed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    return parse_yaml(text, str(path))


def validation_error(doc: YamlDoc, exc: ValidationError, prefix: Loc = (),
                     model: type[BaseModel] | None = None) -> ConfigError:
    """Turn the first pydantic error into a ConfigError naming file, line and field, in
    admin words (:func:`admin_message`; with ``model``, an unknown key names those allowed).
    """
    err = exc.errors()[0]
    loc: Loc = (*prefix, *(p for p in err["loc"] if isinstance(p, str | int)))
    # pydantic puts union tags / model names into loc; keep only parts present in the doc
    clean: list[str | int] = []
    for part in loc:
        if (*clean, part) in doc.lines or isinstance(part, int):
            clean.append(part)
    msg = admin_message(err, model)
    extra = len(exc.errors()) - 1
    typo = misspelt_key(exc.errors(), err)
    if typo is not None:  # `titel:` gives "title missing" and "titel unknown": say it once
        msg += f": is '{typo}' a misspelling of it?"
        extra -= 1
    if extra:
        msg += f" (and {extra} more error{'s' if extra > 1 else ''})"
    key = ".".join(str(p) for p in loc)
    return ConfigError(msg, file=doc.file, line=doc.line(clean), key=key)


def config_env(env_file: Path | str | None,
               environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ``${VAR}`` in ``config/*.yaml`` resolves against: the process environment
    over the ``.env`` file, the precedence pydantic-settings gives the ``MSPHUB_*``
    settings read from the same file. A missing file adds nothing.

    Args:
        env_file: the ``.env`` file the settings were read from (``Settings``'s
            ``env_file``), or None.
        environ: the process environment; ``os.environ`` when omitted.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**values, **(os.environ if environ is None else environ)}


def expand_env(value: Any, env: Mapping[str, str] | None = None, *, where: YamlDoc | None = None,
               loc: Loc = ()) -> Any:
    """Replace ``${VAR}`` references in strings, recursively (``env``: see ``config_env``).

    Raises:
        ConfigError: a referenced variable is not set (naming file and key).
    """
    environ = os.environ if env is None else env
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                msg = f"environment variable {name} is not set"
                if where is not None:
                    raise where.error(msg, loc)
                raise ConfigError(msg, key=".".join(map(str, loc)) or None)
            return environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, environ, where=where, loc=(*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, where=where, loc=(*loc, i)) for i, v in enumerate(value)]
    return value
