"""Design-space exploration: grids, executors, Pareto sets and result files."""

from archsim.dse.evaluate import METRIC_COLUMNS, evaluate_points, outcome_row
from archsim.dse.executor import run_local
from archsim.dse.pareto import pareto_front, pareto_mask
from archsim.dse.space import DesignPoint, expand_grid

__all__ = [
    "METRIC_COLUMNS",
    "DesignPoint",
    "evaluate_points",
    "expand_grid",
    "outcome_row",
    "pareto_front",
    "pareto_mask",
    "run_local",
]
