"""Design-space exploration: spaces and search strategies, executors, the resumable point log,
Pareto sets and hypervolume."""

from archsim.dse.evaluate import METRIC_COLUMNS, evaluate_points, outcome_row
from archsim.dse.executor import dask_client, run_dask, run_local
from archsim.dse.pareto import hypervolume, knee_index, pareto_front, pareto_mask
from archsim.dse.search import run_search
from archsim.dse.space import DesignPoint, DesignSpace, expand_grid
from archsim.dse.store import PointLog, point_key, read_log

__all__ = [
    "METRIC_COLUMNS",
    "DesignPoint",
    "DesignSpace",
    "PointLog",
    "dask_client",
    "evaluate_points",
    "expand_grid",
    "hypervolume",
    "knee_index",
    "outcome_row",
    "pareto_front",
    "pareto_mask",
    "point_key",
    "read_log",
    "run_dask",
    "run_local",
    "run_search",
]
