"""The mapper interface and the registry that finds mappers by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from archsim.errors import ArchsimError
from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.mappers.schedule import Infeasible, Schedule


class Mapper(Protocol):
    """``map(graph, machine)`` decides placement, order and mappings; it does not simulate."""

    name: str

    def map(self, graph: OpGraph, machine: Machine) -> Schedule | Infeasible: ...


_REGISTRY: dict[str, Callable[[], Mapper]] = {}


def register_mapper(name: str) -> Callable[[Callable[[], Mapper]], Callable[[], Mapper]]:
    def decorate(factory: Callable[[], Mapper]) -> Callable[[], Mapper]:
        if name in _REGISTRY:
            raise ValueError(f"mapper '{name}' registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def registered_mappers() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_mapper(name: str) -> Mapper:
    _load_builtin()
    if name not in _REGISTRY:
        raise ArchsimError(f"unknown mapper '{name}' (available: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]()


def _load_builtin() -> None:
    from archsim.mappers import greedy, heterogeneous, memory_mappers, tiled  # noqa: F401
