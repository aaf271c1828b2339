"""Hub-side carriers: I/O adapters that move frames between a transport and the engine."""
