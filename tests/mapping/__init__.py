"""Tests of the mapping layer (hub.mapping) and the shipped mappings/."""
