"""Autotask PSA connector (REST API v1.0): polling, webhooks and ticket write-back."""

from connectors.autotask.config import AutotaskConfig
from connectors.autotask.connector import AutotaskConnector

__all__ = ["AutotaskConfig", "AutotaskConnector"]
