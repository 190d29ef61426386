"""metalloid: the host process: CLI, supervisor, workers, config model, allocator, election, membership."""
