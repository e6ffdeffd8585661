"""Wiring: the composition root, the dramatiq broker and actors, periodic jobs, embedded workers."""
