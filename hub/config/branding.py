"""``config/branding.yaml``: the MSP's name, logo and colours on what its clients see.

The completion record (HTML and PDF) and the shared record page carry them. The file is
optional: without it the records are branded "msphub" in the dashboard's colours.

```yaml
name: Northwind IT
logo: northwind.png        # PNG or JPEG, relative to this file; served at /brand/logo
primary: "#0b5394"         # header band; CSS hex colour (#rgb or #rrggbb)
accent: "#e69138"          # rules and headings
footer: "Questions? support@northwind.example · +44 20 7946 0000"
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.config.yamlio import YamlDoc, read_yaml, validation_error

FILE = "branding.yaml"
LOGO_MAX_BYTES = 1_048_576
# The formats browsers and the PDF writer both read; SVG is left out on purpose (it can
# carry scripts and external references, and the PDF writer renders only part of it).
_LOGO_KINDS = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def _colour(value: str) -> str:
    """A CSS hex colour, normalised to lowercase ``#rrggbb``."""
    if not _HEX.fullmatch(value):
        raise ValueError(f"{value!r} is not a CSS hex colour: write #rgb or #rrggbb, "
                         "e.g. \"#0b5394\" (quoted: YAML reads # as a comment)")
    digits = value[1:].lower()
    return "#" + ("".join(c * 2 for c in digits) if len(digits) == 3 else digits)


Colour = Annotated[str, AfterValidator(_colour)]


def rgb(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` as three 0-255 channels."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _luminance(colour: str) -> float:
    """WCAG relative luminance."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else float(((s + 0.055) / 1.055) ** 2.4)
    r, g, b = (channel(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


class BrandingFile(BaseModel):
    """What ``branding.yaml`` may say (every key optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="msphub", min_length=1, max_length=100,
                      description="The MSP's name, in the record's header and title.")
    logo: str | None = Field(default=None, max_length=300,
                             description="A PNG or JPEG file, relative to branding.yaml.")
    primary: Colour = Field(default="#1d2330", description="The header band's colour.")
    accent: Colour = Field(default="#2f6fde", description="Headings and rules.")
    footer: str | None = Field(default=None, max_length=300,
                               description="A line under the record: contact, address.")

    @field_validator("primary", "accent", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        # `primary: #0b5394` unquoted is a YAML comment: the key is there, its value null
        if value is None:
            raise ValueError('no colour: quote it, e.g. primary: "#0b5394" (YAML reads an '
                             "unquoted # as the start of a comment)")
        return value


@dataclass(frozen=True)
class Logo:
    """A logo read once at load time (served and embedded from memory)."""

    data: bytes
    media_type: str


@dataclass(frozen=True)
class Branding:
    """The validated branding with its logo's bytes and a readable text colour."""

    name: str = "msphub"
    primary: str = "#1d2330"
    accent: str = "#2f6fde"
    footer: str | None = None
    logo: Logo | None = None

    @property
    def on_primary(self) -> str:
        """White or near-black text on the header band, whichever reads better (WCAG)."""
        light, dark = "#ffffff", "#111111"
        return light if contrast(self.primary, light) >= contrast(self.primary, dark) else dark


DEFAULT = Branding()


def _read_logo(doc: YamlDoc, base: Path, value: str) -> Logo:
    path = Path(value)
    path = path if path.is_absolute() else base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise doc.error(f"cannot read the logo {str(path)!r}: {exc.strerror}", ("logo",)) from exc
    if len(data) > LOGO_MAX_BYTES:
        raise doc.error(f"the logo is larger than {LOGO_MAX_BYTES // 1024} KiB", ("logo",))
    for magic, media_type in _LOGO_KINDS.items():
        if data.startswith(magic):
            return Logo(data, media_type)
    raise doc.error("the logo must be a PNG or JPEG file", ("logo",))


def load_branding(path: Path) -> Branding:
    """Load ``config/branding.yaml``; a missing (or empty) file gives :data:`DEFAULT`.

    Raises:
        ConfigError: naming the file, line and key of the problem (a bad colour, an
            unreadable logo or one that is not PNG/JPEG, an unknown key).
    """
    path = Path(path)
    if not path.exists():
        return DEFAULT
    doc = read_yaml(path)
    if doc.data is None:
        return DEFAULT
    if not isinstance(doc.data, dict):
        raise doc.error("expected a mapping: name, logo, primary, accent, footer")
    try:
        spec = BrandingFile.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(doc, exc) from exc
    logo = _read_logo(doc, path.parent, spec.logo) if spec.logo else None
    return Branding(name=spec.name, primary=spec.primary, accent=spec.accent,
                    footer=spec.footer, logo=logo)


__all__ = ["DEFAULT", "FILE", "Branding", "BrandingFile", "Logo", "contrast", "load_branding",
           "rgb"]
