"""Membership: authenticated UDP heartbeats between nodes, the failure detector and the assignment-digest check."""
