"""The one interface every device family implements, and the registry that finds them by kind.

A device model is built from its frozen config and answers three questions about an op: can it run
it (``supports``), how fast could it possibly run it (``roofline``), and what does running it cost
under a mapping (``cost``). Costs carry action counts, which ``archsim.energy`` prices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from archsim.ir.ops import Op
from archsim.ir.tensor import DType


class Bound(StrEnum):
    """What limits an op: arithmetic, memory traffic, or fixed launch/latency cost."""

    COMPUTE = "compute"
    MEMORY = "memory"
    LAUNCH = "launch"


@dataclass(frozen=True)
class OpCost:
    """What one op costs on one device.

    Attributes
    ----------
    latency_s:
        Time from the op's start to its end on the device.
    cycles:
        ``latency_s`` in device clock cycles.
    bound:
        The limiter: compute, memory or launch.
    utilization:
        Achieved share of the device's peak arithmetic rate for the op's dtype (0..1).
    bytes_by_level:
        Bytes moved at each memory level (reads plus writes), keyed by level name.
    actions:
        Counts of priced actions (``mac.bf16``, ``vector_op``, ``read.hbm``, ``write.hbm`` ...).
    notes:
        Short human-readable account of the mapping the model chose (tile, waves, split-K ...).
    """

    latency_s: float
    cycles: float
    bound: Bound
    utilization: float
    bytes_by_level: Mapping[str, float] = field(default_factory=dict)
    actions: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if not (self.latency_s > 0 and self.latency_s < float("inf")):
            raise ValueError(f"op latency must be positive and finite, got {self.latency_s}")


@runtime_checkable
class DeviceModel(Protocol):
    """Protocol of every device model (GPU, NPU, PIM, FPGA)."""

    name: str
    kind: str
    fidelity: tuple[str, ...]
    """The effects the model captures, from the fidelity ladder in DESIGN.md."""

    @property
    def clock_hz(self) -> float: ...

    def supports(self, op: Op) -> bool:
        """True if the device can run ``op`` at all (dtype, op kind)."""
        ...

    def roofline(self, op: Op) -> OpCost:
        """A fast lower bound: max(work / peak compute, compulsory bytes / peak bandwidth)."""
        ...

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        """The modelled cost of ``op``; ``mapping=None`` lets the model pick its best mapping."""
        ...

    def peak_flops_per_s(self, dtype: DType) -> float:
        """Peak arithmetic rate for ``dtype`` (0 when the dtype is unsupported)."""
        ...

    def peak_bw_bytes_per_s(self) -> float:
        """Peak bandwidth of the memory that holds weights."""
        ...

    def energy_per_action_j(self) -> Mapping[str, float]:
        """Price of each action name that ``cost`` may count."""
        ...

    def area_mm2(self) -> float: ...

    def static_power_w(self) -> float: ...

    def memory_capacity_bytes(self) -> float:
        """Capacity of the device memory holding weights and KV cache."""
        ...


DeviceFactory = Callable[[object], DeviceModel]

_REGISTRY: dict[str, DeviceFactory] = {}


def register_device(kind: str) -> Callable[[DeviceFactory], DeviceFactory]:
    """Class decorator: make a device model buildable from configs with ``kind: <kind>``."""

    def decorate(factory: DeviceFactory) -> DeviceFactory:
        if kind in _REGISTRY:
            raise ValueError(f"device kind '{kind}' registered twice")
        _REGISTRY[kind] = factory
        return factory

    return decorate


def registered_kinds() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def build_device(config: object) -> DeviceModel:
    """Instantiate the model registered for ``config.kind``."""
    _load_builtin_models()
    kind = getattr(config, "kind", None)
    if kind not in _REGISTRY:
        raise KeyError(f"no device model registered for kind '{kind}' (have {sorted(_REGISTRY)})")
    return _REGISTRY[kind](config)


def _load_builtin_models() -> None:
    # importing the modules runs their @register_device decorators
    from archsim.hw import fpga, gpu, npu, pim, pim_logic  # noqa: F401
