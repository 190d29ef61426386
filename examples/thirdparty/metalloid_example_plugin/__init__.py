"""Placeholder: the example plugin is written in the runtime issue."""
