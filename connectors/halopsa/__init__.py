"""HaloPSA connector (API v2): polling, Basic-auth webhooks and ticket write-back."""

from connectors.halopsa.config import HaloPSAConfig
from connectors.halopsa.connector import HaloPSAConnector

__all__ = ["HaloPSAConfig", "HaloPSAConnector"]
