"""Pure decisions: events, conditions, checklists, mapping rules, calendars, team, recurrence.

Nothing here does I/O or reads the clock: files, the database, HTTP and "now" are
passed in by the services around it.
"""
