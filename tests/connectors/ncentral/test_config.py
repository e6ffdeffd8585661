"""N-central instance configuration: what an admin may write, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import InvalidConfig, validate_config
from connectors.ncentral import NcentralConfig

from .conftest import JWT


def _config(**raw: Any) -> NcentralConfig:
    return NcentralConfig.model_validate({"server_url": "ncentral.example.com",
                                          "user_api_token": JWT, **raw})


def test_defaults_and_normalisation() -> None:
    """A bare host becomes https://host; the JWT is a SecretStr; both kinds are polled."""
    config = _config(server_url="NCentral.Example.com/api/")

    assert config.server_url == "https://ncentral.example.com"
    assert config.api_root == "https://ncentral.example.com/api"
    assert isinstance(config.user_api_token, SecretStr)
    assert config.scope == "customers_and_sites" and config.page_size == 100
    assert JWT not in repr(config)


@pytest.mark.parametrize("raw", [
    {"server_url": "http://ncentral.example.com"},
    {"server_url": "https://ncentral.example.com/dashboard"},
    {"server_url": "https://user@ncentral.example.com"},
    {"server_url": "ftp://ncentral.example.com"},
    {"page_size": 0},
    {"page_size": 1001},
    {"org_units": []},
    {"org_units": [0]},
    {"categories": {"Cove": "backups"}},
    {"priorities": {5: "Urgent"}},
    {"scope": "everything"},
    {"unknown_key": 1},
])
def test_refused_settings(raw: dict[str, Any]) -> None:
    """Plain HTTP (without allow_http), paths, bad bounds, unknown words and keys."""
    with pytest.raises(ValidationError):
        _config(**raw)


def test_the_sandbox_may_use_http() -> None:
    """allow_http is the one way to a plain-HTTP server (127.0.0.1 sandbox)."""
    assert _config(server_url="http://127.0.0.1:8125", allow_http=True).server_url == \
        "http://127.0.0.1:8125"


def test_registry_validation_never_echoes_the_token() -> None:
    """InvalidConfig lists field paths and messages, not the values."""
    with pytest.raises(InvalidConfig) as info:
        validate_config("ncentral", {"server_url": "http://x", "user_api_token": JWT})

    assert JWT not in str(info.value)
    assert "allow_http" in str(info.value)
