"""Supervising: the supervisor process, worker lifecycle (state machine, backoff), routing and replay of state."""
