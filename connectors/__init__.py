"""Vendor connectors: one package per vendor plus the shared base (protocols, registry, HTTP)."""
