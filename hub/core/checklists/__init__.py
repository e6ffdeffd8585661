"""Playbooks (checklist templates) and the pure checklist engine."""
