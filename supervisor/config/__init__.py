"""The config model: MetalLB resources as frozen dataclasses, loaded from YAML or API dicts, validated
with file:line diagnostics.
"""
