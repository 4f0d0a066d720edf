"""Simulation: per-op costs from the device models, in schedule order."""

from archsim.sim.result import OP_COLUMNS, OpRecord, Result, Totals
from archsim.sim.simulate import simulate

__all__ = ["OP_COLUMNS", "OpRecord", "Result", "Totals", "simulate"]
