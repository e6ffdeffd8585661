"""The REST API and web dashboard (FastAPI)."""

from hub.api.app import create_app

__all__ = ["create_app"]
