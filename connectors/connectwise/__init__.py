"""ConnectWise PSA connector (REST API 3.0): polling, callbacks and ticket write-back."""

from connectors.connectwise.config import ConnectWiseConfig
from connectors.connectwise.connector import ConnectWiseConnector

__all__ = ["ConnectWiseConfig", "ConnectWiseConnector"]
