"""Datto RMM connector (API v2): alert polling, unsigned webhooks re-read from the API."""

from connectors.datto_rmm.config import DattoRMMConfig
from connectors.datto_rmm.connector import DattoRMMConnector

__all__ = ["DattoRMMConfig", "DattoRMMConnector"]
