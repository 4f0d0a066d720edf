"""Workload lowerings (generators -> OpGraph) and the shipped workload files."""
