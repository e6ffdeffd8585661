"""Callback delivery of the ConnectWise sandbox: the sandbox kit's ``WebhookDispatcher``.

Kept under its old name for code that builds or subclasses it (``bench/sandbox_proc.py``).
"""

from __future__ import annotations

from connectors.sandbox.dispatch import WebhookDispatcher

CallbackDispatcher = WebhookDispatcher

__all__ = ["CallbackDispatcher"]
