"""Announcing: the contract announcer plugins implement (`api`) and the process that hosts one plugin (`host`)."""
