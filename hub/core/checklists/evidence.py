"""Evidence forms: the typed fields a step declares, and checking what a person entered.

A playbook step lists ``evidence_fields`` (text, number, date, yes/no, choice, URL, file
reference, or a "confirmed" check box with its wording). Completing the step checks the
values against them (:func:`check_values`) and the clean values go into the ``step_done``
audit fact; :func:`summarise` turns them into the line shown on the run page and in the
completion record written back to the ticket. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.errors import HubError

_ID = r"^[a-z0-9][a-z0-9_-]*$"
MAX_VALUE = 2_000  # one field's text: a job name, a URL, a file reference
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class FieldType(StrEnum):
    """Kinds of evidence a step can ask for."""

    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"  # yes / no
    CHOICE = "choice"
    URL = "url"
    FILE = "file"  # a reference to a file: document name, attachment id, path or link
    CONFIRM = "confirm"  # a check box that must be ticked; `label` is its wording


class EvidenceField(BaseModel):
    """One field of a step's evidence form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID, description="Key of the value in the audit fact.")
    label: str = Field(min_length=1, description="What the person is asked; for 'confirm', "
                       "the statement they tick (e.g. 'I checked every device is encrypted').")
    type: FieldType = Field(default=FieldType.TEXT)
    required: bool = Field(default=True, description="A person completing the step must give "
                           "it ('confirm' boxes are always required: they must be ticked).")
    choices: list[str] | None = Field(default=None, description="Allowed values ('choice').")
    min: float | None = Field(default=None, description="Smallest allowed number ('number').")
    max: float | None = Field(default=None, description="Largest allowed number ('number').")
    unit: str | None = Field(default=None, description="Shown after a number, e.g. '%'.")
    help: str | None = Field(default=None, description="Hint shown beside the field.")

    @model_validator(mode="after")
    def _shape(self) -> EvidenceField:
        if self.type is FieldType.CHOICE and not self.choices:
            raise ValueError("a field of type 'choice' needs 'choices'")
        if self.type is not FieldType.CHOICE and self.choices:
            raise ValueError("'choices' is only allowed with type 'choice'")
        numeric = self.min is not None or self.max is not None or self.unit is not None
        if numeric and self.type is not FieldType.NUMBER:
            raise ValueError("'min', 'max' and 'unit' are only allowed with type 'number'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is greater than 'max'")
        return self

    @property
    def must_give(self) -> bool:
        """Whether a person completing the step has to fill it in."""
        return self.required or self.type is FieldType.CONFIRM


class EvidenceInvalid(HubError):
    """The evidence a person entered does not fit the step's form.

    Attributes:
        step: the step id.
        problems: ``(field id, message)`` pairs, in the form's order.
    """

    def __init__(self, step: str, problems: Sequence[tuple[str, str]]) -> None:
        self.step = step
        self.problems = list(problems)
        listed = "; ".join(f"{field}: {message}" for field, message in self.problems)
        self.reason = f"the evidence for step '{step}' is incomplete or invalid: {listed}"
        super().__init__(self.reason)


def check_values(step: str, form: Sequence[EvidenceField],
                 given: Mapping[str, Any]) -> dict[str, Any]:
    """The clean values of a completed evidence form (dates as ISO text, numbers as numbers).

    Raises:
        EvidenceInvalid: an unknown field, a missing required one, an unticked
            confirmation or a value of the wrong type — every problem at once.
    """
    known = {f.id for f in form}
    problems = [(name, "unknown field (this step's form has: "
                 f"{', '.join(sorted(known)) or 'no fields'})")
                for name in sorted(set(given) - known)]
    clean: dict[str, Any] = {}
    for spec in form:
        value = given.get(spec.id)
        if _blank(value):
            if spec.type is FieldType.CONFIRM:
                problems.append((spec.id, f"must be ticked: \"{spec.label}\""))
            elif spec.required:
                problems.append((spec.id, f"is required ({spec.label})"))
            continue
        try:
            clean[spec.id] = _coerce(spec, value)
        except ValueError as exc:
            problems.append((spec.id, str(exc)))
    if problems:
        raise EvidenceInvalid(step, problems)
    return clean


def summarise(form: Sequence[EvidenceField], values: Mapping[str, Any]) -> str:
    """One line with each given value under its label (the form's order), for people."""
    parts: list[str] = []
    for spec in form:
        if spec.id not in values:
            continue
        parts.append(f"{spec.label}: {show(spec, values[spec.id])}"
                     if spec.type is not FieldType.CONFIRM else f"confirmed \"{spec.label}\"")
    return "; ".join(parts)


def show(spec: EvidenceField, value: Any) -> str:
    """A clean value as people read it."""
    if spec.type is FieldType.BOOLEAN:
        return "yes" if value else "no"
    if spec.type is FieldType.NUMBER:
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{text}{spec.unit or ''}"
    return str(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"must be {what}")
    text = str(value).strip()
    if len(text) > MAX_VALUE:
        raise ValueError(f"must be at most {MAX_VALUE} characters")
    if _CONTROL.search(text):
        raise ValueError("must not contain control characters")
    return text


def _coerce(spec: EvidenceField, value: Any) -> Any:
    kind = spec.type
    if kind is FieldType.CONFIRM or kind is FieldType.BOOLEAN:
        flag = _flag(value)
        if flag is None:
            raise ValueError("must be yes or no" if kind is FieldType.BOOLEAN
                             else f"must be ticked: \"{spec.label}\"")
        if kind is FieldType.CONFIRM and not flag:
            raise ValueError(f"must be ticked: \"{spec.label}\"")
        return flag
    if kind is FieldType.NUMBER:
        return _number(spec, value)
    if kind is FieldType.DATE:
        return _date(value)
    text = _text(value, "text")
    if kind is FieldType.URL and not _URL.match(text):
        raise ValueError("must be a web address starting with https:// or http://")
    if kind is FieldType.CHOICE and spec.choices is not None and text not in spec.choices:
        raise ValueError(f"must be one of: {', '.join(spec.choices)}")
    return text


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else ""
    if word in ("true", "yes", "on", "1", "y"):
        return True
    if word in ("false", "no", "off", "0", "n"):
        return False
    return None


def _number(spec: EvidenceField, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float):
        number: int | float = value
    else:
        text = _text(value, "a number")
        if spec.unit:  # "97%" for a field whose unit is "%"
            text = text.removesuffix(spec.unit).strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ValueError("must be a number") from None
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        if number.is_integer() and abs(number) < 2**53:
            number = int(number)
    if spec.min is not None and number < spec.min:
        raise ValueError(f"must be at least {spec.min:g}{spec.unit or ''}")
    if spec.max is not None and number > spec.max:
        raise ValueError(f"must be at most {spec.max:g}{spec.unit or ''}")
    return number


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value, "a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("must be a date (YYYY-MM-DD)") from None
