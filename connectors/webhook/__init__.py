"""Generic signed-webhook connector (vendor ``webhook``)."""

from connectors.webhook.connector import (
    WebhookConfig,
    WebhookConnector,
    signature,
    signed_headers,
)

__all__ = ["WebhookConfig", "WebhookConnector", "signature", "signed_headers"]
