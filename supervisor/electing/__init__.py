"""Electing: who may announce a Service (eligibility) and MetalLB's sha256 ranking. Pure; used by the
announcer plugins.
"""
