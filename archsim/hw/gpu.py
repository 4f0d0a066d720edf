"""GPU device model (placeholder until the tiled model lands)."""
