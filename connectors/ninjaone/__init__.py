"""NinjaOne connector (Public API v2): the activity stream, header-secret webhooks re-read
from the API, organizations, devices, alerts and backup / antivirus / patch status."""

from connectors.ninjaone.config import NinjaOneConfig
from connectors.ninjaone.connector import NinjaOneConnector

__all__ = ["NinjaOneConfig", "NinjaOneConnector"]
