"""The in-process runtime of the pipeline tests (stub broker, frozen clock, shipped
playbooks), reused by the verification-check tests."""

from tests.pipeline.conftest import clock, hub_settings, psa, runtime  # noqa: F401
