"""Predicted time of a measured row: the sum of its ops' modelled latencies on one device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from archsim.errors import ArchsimError
from archsim.hw.base import DeviceModel
from archsim.hw.machine import Machine
from archsim.ir.ops import Op


@dataclass(frozen=True)
class Prediction:
    """Either a predicted latency or the reason there is none.

    Attributes
    ----------
    latency_s:
        Predicted time of all ops together, or None when the device cannot run one of them.
    reason:
        Why there is no prediction ("" when there is one).
    """

    latency_s: float | None
    reason: str = ""


def predict_ops(
    ops: Sequence[Op],
    device: DeviceModel,
    *,
    eager_multi_kernel: bool = False,
    host_launch_s: float = 0.0,
) -> Prediction:
    """Predict the time of ``ops`` run back to back on ``device``.

    Parameters
    ----------
    ops:
        The ops of one measured row (or of one traced aten op), in launch order.
    device:
        The device model that prices each op with ``cost(op).latency_s``.
    eager_multi_kernel:
        True when the measurement includes host launch gaps between the kernels.
    host_launch_s:
        Host time to issue one eager kernel launch, in seconds (the measured H100 host issues one
        every 11.2 us). It only matters for ``eager_multi_kernel`` rows: the host launches kernels
        one after another, so a kernel shorter than the launch interval leaves the GPU waiting
        and each op takes ``max(gpu_time, host_launch_s)``. 0 predicts GPU time only.

    Returns
    -------
    Prediction
        The summed latency in seconds, or the first op the device does not support.
    """
    if host_launch_s < 0:
        raise ArchsimError(f"host launch time must be >= 0 s, got {host_launch_s}")
    total_s = 0.0
    for op in ops:
        if not device.supports(op):
            return Prediction(
                None,
                f"device '{device.name}' ({device.kind}) does not support {op.kind} in "
                f"{op.dtype.value}",
            )
        latency_s = device.cost(op).latency_s
        if eager_multi_kernel:
            latency_s = max(latency_s, host_launch_s)
        total_s += latency_s
    return Prediction(total_s)


def select_device(machine: Machine, name: str | None) -> DeviceModel:
    """The device of ``machine`` called ``name``, or its first device when ``name`` is None."""
    if not machine.devices:
        raise ArchsimError(f"machine '{machine.name}' has no devices")
    if name is None:
        return next(iter(machine.devices.values()))
    if name not in machine.devices:
        have = ", ".join(machine.devices)
        raise ArchsimError(f"machine '{machine.name}' has no device '{name}' (it has: {have})")
    return machine.devices[name]
