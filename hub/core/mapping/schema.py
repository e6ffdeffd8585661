"""Mapping files: rules that turn PSA/RMM events into checklist actions (pydantic models).

The field descriptions below are the admin reference; ``msphub mappings schema`` turns
them into a JSON Schema for editors.
"""

from __future__ import annotations

import copy
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from hub.core.conditions import CONDITION_JSON_SCHEMA
from hub.core.events import EventKind
from hub.core.mapping.people import NoteSpec, NotifySpec
from hub.core.suggest import hint

if TYPE_CHECKING:  # fields.py imports the engine, which imports this module
    from hub.core.mapping.fields import FieldCatalog

RULE_ID = r"^[a-z0-9][a-z0-9_-]*$"
ACTION_FIELDS: tuple[str, ...] = ("launch", "tick", "comment", "cancel", "notify", "note")
InputValue = str | bool | int | float | date | None
RuleMode = Literal["live", "shadow", "draft"]
OnError = Literal["note", "none"]


def _as_list(value: Any) -> Any:
    """A single name is shorthand for a one-element list."""
    return [value] if isinstance(value, str) else value


NameList = Annotated[
    list[str],
    BeforeValidator(_as_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
]
KindList = Annotated[
    list[EventKind],
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": [k.value for k in EventKind]},
                {"type": "array", "items": {"enum": [k.value for k in EventKind]}, "minItems": 1},
            ]
        }
    ),
]


class NotesMode(StrEnum):
    """How step progress of a launched run is written back to the originating ticket."""

    EACH = "each"
    DIGEST = "digest"
    NONE = "none"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LaunchSpec(_Strict):
    """Start a new run of a playbook for a client."""

    playbook: str = Field(description="Id of the playbook to launch (see playbooks/).")
    client: str | None = Field(
        default=None,
        description="Template giving the client id; default: the event's client.",
    )
    inputs: dict[str, InputValue] = Field(
        default_factory=dict,
        description="Playbook inputs by name. Strings are templates rendered against the "
        "event, e.g. \"{{ ticket.contact.name }}\"; other values are used as written.",
    )
    notes: NotesMode = Field(
        default=NotesMode.EACH,
        description="Progress notes on the originating ticket: 'each' step, one 'digest', "
        "or 'none'.",
    )


class TickSpec(_Strict):
    """Mark a step done in the client's active runs of one or more playbooks."""

    playbook: NameList = Field(
        min_length=1, description="Playbook id, or a list of ids, whose active runs are ticked."
    )
    step: str = Field(description="Id of the step to mark done.")
    evidence: str | None = Field(
        default=None,
        description="Template for the evidence recorded on the step; default: the event "
        "kind, source and subject.",
    )


class CommentSpec(_Strict):
    """Add a comment to the client's active runs."""

    playbook: NameList | None = Field(
        default=None,
        description="Playbook id or list of ids; omitted: every active run of the client.",
    )
    text: str = Field(min_length=1, description="Template for the comment text.")


class CancelSpec(_Strict):
    """Cancel the client's active runs of the given playbooks."""

    playbook: NameList = Field(
        min_length=1, description="Playbook id or list of ids whose active runs are cancelled."
    )
    reason: str = Field(
        min_length=1, description="Template for the reason kept in the audit trail."
    )


class Rule(_Strict):
    """When an event of a kind arrives from a source and matches a condition, do one action."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(
        pattern=RULE_ID,
        max_length=100,
        description="Unique across all mapping files; the audit trail names the rule "
        "as actor 'rule:<id>'.",
    )
    description: str | None = Field(default=None, description="What the rule is for, for admins.")
    enabled: bool = Field(default=True, description="false: the rule is checked but never applied.")
    mode: RuleMode = Field(
        default="live",
        description="live: applied. shadow: evaluated on live events, what it would have done "
        "is recorded in the event's trace and in 'msphub mappings stats', nothing is applied. "
        "draft: checked, never evaluated. Promote a rule by changing this one word.",
    )
    on_error: OnError = Field(
        default="note",
        description="When the rule matches a ticket event but cannot apply (a missing "
        "input, an unlinked client): 'note' posts one note on the ticket saying what is "
        "missing; 'none' only marks the event failed.",
    )
    on: KindList = Field(
        min_length=1,
        description="Event kind, or a list of kinds, the rule reacts to (ticket.created, "
        "alert.resolved, ...).",
    )
    from_: NameList | None = Field(
        default=None,
        alias="from",
        description="Vendors (connectwise, datto-rmm) or connector instance names (cw-prod) "
        "the event must come from; omitted: any source. Case-insensitive; '_' equals '-'.",
    )
    if_: dict[str, Any] | None = Field(
        default=None,
        alias="if",
        description="Condition on the event's fields; omitted: always.",
    )
    priority: int = Field(
        default=0, description="Higher runs first; equal priorities keep file order."
    )
    stop: bool = Field(
        default=False,
        description="true: when this rule matches, later rules are not evaluated for the event.",
    )
    launch: LaunchSpec | None = Field(default=None, description="Start a playbook run.")
    tick: TickSpec | None = Field(default=None, description="Mark a step done.")
    comment: CommentSpec | None = Field(default=None, description="Comment on active runs.")
    cancel: CancelSpec | None = Field(default=None, description="Cancel active runs.")
    notify: NotifySpec | None = Field(default=None, description="Tell people (email, Teams, "
                                      "Slack, a ticket note).")
    note: NoteSpec | None = Field(default=None, description="One internal note on the "
                                  "event's ticket.")

    @field_validator("on", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        value = _as_list(value)
        if isinstance(value, list):
            allowed = [k.value for k in EventKind]
            for item in value:
                if isinstance(item, str) and item not in allowed:
                    raise ValueError(
                        f"unknown event kind '{item}'{hint(item, allowed)} "
                        f"(allowed: {', '.join(allowed)})"
                    )
        return value

    @field_validator("from_")
    @classmethod
    def _sources(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(name.strip() for name in value):
            raise ValueError("'from' names must not be empty (omit 'from' to accept any source)")
        if value is not None and not value:
            raise ValueError("'from' needs at least one name (omit it to accept any source)")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        given = [name for name in ACTION_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            found = f" (found: {', '.join(given)})" if given else ""
            raise ValueError(
                f"a rule needs exactly one action: {', '.join(ACTION_FIELDS)}{found}"
            )
        return self

    @property
    def action(self) -> str:
        """The name of the rule's one action: launch, tick, comment or cancel."""
        return next(name for name in ACTION_FIELDS if getattr(self, name) is not None)


class MappingFile(_Strict):
    """One file under mappings/: a list of rules."""

    rules: list[Rule] = Field(default_factory=list, description="The rules, in file order.")


def mapping_json_schema(catalog: FieldCatalog | None = None) -> dict[str, Any]:
    """JSON Schema of a mapping file, for editors (YAML language servers).

    With ``catalog``, conditions list every known field (type, example, the sources that
    emit it) and ``from`` the known vendor and instance names, so editors complete them;
    other names stay valid in the schema (``mappings check`` is what refuses them).
    """
    schema = MappingFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "msphub mapping file"
    defs = schema.setdefault("$defs", {})
    condition = copy.deepcopy({k: v for k, v in CONDITION_JSON_SCHEMA.items() if k != "$id"})
    defs["condition"] = condition
    rule = defs.get("Rule", {})
    if "properties" in rule:
        description = rule["properties"]["if"].get("description")
        rule["properties"]["if"] = {"$ref": "#/$defs/condition", "description": description}
    if catalog is not None:
        _add_catalog(condition, rule, catalog)
    return schema


def _add_catalog(condition: dict[str, Any], rule: dict[str, Any], catalog: FieldCatalog) -> None:
    """Field names as condition properties; source names as ``from`` suggestions."""
    test = condition["additionalProperties"]
    described: dict[str, dict[str, str]] = {}
    infos: dict[str, Any] = {}
    for name, info in catalog.readable():
        described.setdefault(info.name, {})[name] = info.description
        infos.setdefault(info.name, info)
    for path in sorted(infos):
        info, texts = infos[path], described[path]
        example = "" if info.example is None else f", e.g. {info.example!r}"
        if len(set(texts.values())) == 1:
            text = f"{info.description} ({info.type}{example}; {', '.join(sorted(texts))})"
        else:
            text = "; ".join(f"{n}: {d}" for n, d in sorted(texts.items()))
            text += f" ({info.type}{example})"
        condition["properties"].setdefault(path, {**test, "description": text})
    names = {"enum": catalog.names()}
    if "properties" in rule and "from" in rule["properties"]:
        prop = rule["properties"]["from"]
        prop["anyOf"] = [
            names, {"type": "string"},
            {"type": "array", "items": {"anyOf": [names, {"type": "string"}]}, "minItems": 1},
        ]
        prop.pop("type", None)
