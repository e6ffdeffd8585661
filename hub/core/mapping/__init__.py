"""Mapping rules: schema, pure engine (evaluate / explain), actions, sandboxed templates, replay."""
