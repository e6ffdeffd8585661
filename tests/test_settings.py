"""Settings: defaults, MSPHUB_ environment variables, the .env file, and secret handling."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from hub.settings import Settings, get_settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no .env) that relative paths resolve against."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults(workdir: Path) -> None:
    """With no environment and no .env, every field has its documented default."""
    settings = Settings()

    assert settings.data_dir == workdir / "data"
    assert settings.database_url == f"sqlite:///{workdir}/data/msphub.db"
    assert settings.redis_url is None
    assert settings.config_dir == workdir / "config"
    assert settings.mappings_dir == workdir / "mappings"
    assert settings.playbooks_dir == workdir / "playbooks"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.log_format, settings.log_level) == ("auto", "INFO")
    assert settings.secret_key is None
    assert settings.webhook_max_body == 1_048_576
    assert settings.worker_threads == 8
    assert settings.env == "development"


def test_relative_dirs_resolve_against_cwd_at_construction(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative directories become absolute when Settings is built; a later chdir keeps them."""
    settings = Settings(data_dir=Path("var/hub"), playbooks_dir=Path("pb"))
    monkeypatch.chdir(workdir.parent)

    assert settings.data_dir == workdir / "var" / "hub"
    assert settings.playbooks_dir == workdir / "pb"
    assert settings.database_url == f"sqlite:///{workdir}/var/hub/msphub.db"


def test_environment_variables_need_the_prefix(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MSPHUB_-prefixed variables set fields; unprefixed ones are ignored."""
    monkeypatch.setenv("MSPHUB_PORT", "9001")
    monkeypatch.setenv("MSPHUB_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("MSPHUB_ENV", "production")
    monkeypatch.setenv("MSPHUB_LOG_FORMAT", "json")
    monkeypatch.setenv("MSPHUB_WORKER_THREADS", "3")
    monkeypatch.setenv("HOST", "0.0.0.0")

    settings = Settings()

    assert settings.port == 9001
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.env == "production"
    assert settings.log_format == "json"
    assert settings.worker_threads == 3
    assert settings.host == "127.0.0.1"


def test_database_url_follows_data_dir_unless_set(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default SQLite file lives in data_dir; an explicit database URL wins."""
    monkeypatch.setenv("MSPHUB_DATA_DIR", "/srv/msphub")
    assert Settings().database_url == "sqlite:////srv/msphub/msphub.db"

    monkeypatch.setenv("MSPHUB_DATABASE_URL", "postgresql+psycopg://hub@db/msphub")
    assert Settings().database_url == "postgresql+psycopg://hub@db/msphub"


def test_blank_values_mean_unset(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty MSPHUB_REDIS_URL means no Redis; an empty MSPHUB_DATABASE_URL means the default."""
    monkeypatch.setenv("MSPHUB_REDIS_URL", "")
    monkeypatch.setenv("MSPHUB_DATABASE_URL", "")

    settings = Settings()

    assert settings.redis_url is None
    assert settings.database_url == f"sqlite:///{workdir}/data/msphub.db"


def test_dotenv_file_is_read_and_environment_wins(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values come from .env in the working directory; real environment variables override it."""
    # Given a .env file, including a test-only MSPHUB_TEST_ variable that is not a setting
    (workdir / ".env").write_text(
        "MSPHUB_PORT=8100\n"
        "MSPHUB_PUBLIC_URL=https://hub.example.com/\n"
        "MSPHUB_SECRET_KEY=from-dotenv\n"
        "MSPHUB_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test\n"
        "UNRELATED=1\n",
        encoding="utf-8",
    )
    # And an environment variable for one of the same keys
    monkeypatch.setenv("MSPHUB_PORT", "8200")

    # When settings are read
    settings = Settings()

    # Then .env supplies what the environment does not, and the environment wins
    assert settings.port == 8200
    assert settings.public_url == "https://hub.example.com"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "from-dotenv"


def test_missing_dotenv_is_fine(workdir: Path) -> None:
    """No .env file in the working directory is not an error."""
    assert not (workdir / ".env").exists()
    assert Settings().port == 8000


def test_constructor_overrides_beat_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyword arguments (what tests use) take precedence over the environment and .env."""
    monkeypatch.setenv("MSPHUB_PORT", "9001")
    (workdir / ".env").write_text("MSPHUB_HOST=10.0.0.1\n", encoding="utf-8")

    settings = Settings(port=7000, host="0.0.0.0", _env_file=None)

    assert (settings.host, settings.port) == ("0.0.0.0", 7000)


def test_secret_key_is_never_printed(workdir: Path) -> None:
    """repr() and str() show neither the secret key nor a password inside a URL."""
    settings = Settings(
        secret_key="s3cr3t-value",
        database_url="postgresql+psycopg://hub:db-pa55@db:5432/msphub",
        redis_url="redis://:redis-pa55@cache:6379/0",
    )

    for text in (repr(settings), str(settings)):
        assert "s3cr3t-value" not in text
        assert "db-pa55" not in text
        assert "redis-pa55" not in text
        assert "postgresql+psycopg://hub:***@db:5432/msphub" in text
    assert isinstance(settings.secret_key, SecretStr)
    assert settings.secret_key.get_secret_value() == "s3cr3t-value"
    # The value itself is untouched: only its display is masked.
    assert settings.database_url == "postgresql+psycopg://hub:db-pa55@db:5432/msphub"


def test_log_level_is_case_insensitive(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``MSPHUB_LOG_LEVEL=debug`` is accepted and stored as ``DEBUG``."""
    monkeypatch.setenv("MSPHUB_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("log_format", "xml"),
        ("log_level", "chatty"),
        ("env", "staging"),
        ("port", 0),
        ("port", 70000),
        ("webhook_max_body", 0),
        ("worker_threads", 0),
    ],
)
def test_invalid_values_are_rejected(workdir: Path, field: str, value: object) -> None:
    """Out-of-range numbers and unknown choices raise a ValidationError naming the field."""
    with pytest.raises(ValidationError) as excinfo:
        Settings(**{field: value})
    assert field in str(excinfo.value)


def test_settings_are_frozen(workdir: Path) -> None:
    """Settings cannot be changed after construction; use model_copy(update=...) instead."""
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    assert settings.model_copy(update={"port": 1}).port == 1


def test_get_settings_is_cached(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """get_settings() reads the environment once; cache_clear() makes it read again."""
    monkeypatch.setenv("MSPHUB_PORT", "8123")
    first = get_settings()
    monkeypatch.setenv("MSPHUB_PORT", "8124")

    assert get_settings() is first
    assert first.port == 8123

    get_settings.cache_clear()
    assert get_settings().port == 8124


def test_settings_fixture_points_into_tmp_path(settings: Settings, tmp_path: Path) -> None:
    """The shared ``settings`` fixture keeps every directory and the database in tmp_path."""
    for path in (
        settings.data_dir,
        settings.config_dir,
        settings.mappings_dir,
        settings.playbooks_dir,
    ):
        assert path.is_dir()
        assert path.is_relative_to(tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path}/data/msphub.db"
    assert settings.redis_url is None


def test_env_example_documents_every_setting() -> None:
    """.env.example names every Settings field as MSPHUB_<FIELD>, and nothing else."""
    text = (Path(__file__).resolve().parent.parent / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*(MSPHUB_[A-Z_]+)=", text, flags=re.MULTILINE))

    assert documented == {f"MSPHUB_{name.upper()}" for name in Settings.model_fields}


def test_env_example_loads_as_a_dotenv(workdir: Path) -> None:
    """Copied to .env unchanged, .env.example yields exactly the defaults."""
    shutil.copy(Path(__file__).resolve().parent.parent / ".env.example", workdir / ".env")
    assert Settings() == Settings(_env_file=None)
