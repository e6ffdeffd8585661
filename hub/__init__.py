"""msphub: the hub between an MSP's PSA, RMM and its checklists."""

__version__ = "0.1.0"
