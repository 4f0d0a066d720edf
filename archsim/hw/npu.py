"""NPU device model (placeholder until the systolic model lands)."""
