"""Reproductions of published results from archsim's own models (``archsim reproduce NAME``)."""

from archsim.reproduce.base import (
    Metric,
    Reproduction,
    register_reproduction,
    registered_reproductions,
    run_reproduction,
)

__all__ = [
    "Metric",
    "Reproduction",
    "register_reproduction",
    "registered_reproductions",
    "run_reproduction",
]
