"""Workload lowerings by generator name: ``register_lowering`` adds one, ``lower`` runs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from archsim.config.workload import WorkloadConfig
from archsim.errors import ArchsimError
from archsim.ir.graph import OpGraph
from archsim.ir.ops import Op

# A lowering takes the validated generator spec (GemmSuiteSpec, TransformerSpec, ...) and returns
# its ops in a topological order.
LoweringFn = Callable[[Any], Sequence[Op]]
WorkItemsFn = Callable[[Any], tuple[float, str]]


@dataclass(frozen=True)
class Lowering:
    """A registered generator: how to build its ops and what one run of it delivers."""

    name: str
    build: LoweringFn
    work_items: WorkItemsFn


_REGISTRY: dict[str, Lowering] = {}


def _one_run(spec: Any) -> tuple[float, str]:
    return 1.0, "run"


def register_lowering(
    name: str, *, work_items: WorkItemsFn = _one_run
) -> Callable[[LoweringFn], LoweringFn]:
    """Decorator: make ``generator: <name>`` workload files lower with the decorated function.

    Parameters
    ----------
    name:
        The generator name of the workload file.
    work_items:
        The throughput unit of one run: ``spec -> (count, unit)``, e.g. ``(2048.0, "tokens")``.
    """

    def register(build: LoweringFn) -> LoweringFn:
        if name in _REGISTRY:
            raise ValueError(f"workload generator '{name}' registered twice")
        _REGISTRY[name] = Lowering(name=name, build=build, work_items=work_items)
        return build

    return register


def registered_generators() -> list[str]:
    return sorted(_REGISTRY)


def _lowering_for(config: WorkloadConfig) -> Lowering:
    generator = config.workload.generator
    if generator not in _REGISTRY:
        known = ", ".join(registered_generators())
        raise ArchsimError(f"workload.generator: no lowering for '{generator}' (known: {known})")
    return _REGISTRY[generator]


def lower(config: WorkloadConfig) -> OpGraph:
    """Lower a workload file to its operator graph, named after ``config.name``.

    Raises
    ------
    ArchsimError
        For an unknown generator or model preset, or parameters the model cannot take.
    """
    ops = _lowering_for(config).build(config.workload)
    return OpGraph(config.name, ops)


def work_items(config: WorkloadConfig) -> tuple[float, str]:
    """What one run of the workload delivers, to turn latency into throughput.

    Returns
    -------
    tuple[float, str]
        The count and its unit: tokens for transformer and MoE workloads (prefill: batch x
        seq_len; decode: batch), ``(1, "suite")`` for a GEMM suite.
    """
    return _lowering_for(config).work_items(config.workload)
