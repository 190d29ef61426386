"""Announcer plugins shipped with metalloid, loaded through pluggy like third-party ones."""
