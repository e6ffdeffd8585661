"""The YAML files admins edit: playbooks, mappings, team, calendars, clients, schedules, connectors.

Each loader reads its files and returns validated core objects, or raises
``ConfigError`` naming the file, line and key. Live holders reload on change and keep
the last good version when an edit is broken.
"""
