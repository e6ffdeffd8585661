"""Persistence: SQLAlchemy models, database engines and the audit chain."""
