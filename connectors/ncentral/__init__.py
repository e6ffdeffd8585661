"""N-able N-central connector (REST API-Service): active issues polled and diffed."""

from connectors.ncentral.config import NcentralConfig
from connectors.ncentral.connector import NcentralConnector

__all__ = ["NcentralConfig", "NcentralConnector"]
