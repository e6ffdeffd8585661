"""Mapping rules: which PSA/RMM events launch, tick, comment on or cancel checklists.

Modules: ``schema`` (the YAML models), ``loader`` (files → RuleSet, I/O), ``engine``
(pure ``evaluate`` / ``explain``), ``actions`` (typed results), ``templates`` (sandboxed
Jinja), ``reloader`` (live reload), ``replay`` (diff two rule sets), ``cli`` (``msphub
mappings``).
"""
