"""Predicted time of a measured row: its ops' modelled latencies on one device, in launch order.

Single-kernel rows are the kernel's time. Multi-kernel rows are played through a small model of
the launch queue:

* **CUDA graph** rows: every kernel after the first is already queued behind the previous one, so
  its launch overlaps that kernel and only the device's inter-kernel gap remains.
* **Eager** rows: the host issues one kernel every ``host_launch_s``; a kernel starts when it has
  been issued and the previous one has finished. When the host is ahead (the queue is not empty)
  the kernel's launch overlaps its predecessor as in a graph; when the GPU waits for the host, the
  host gap shows in the time. The measurement's queue pad gives the host a head start
  (``queue_head_start_s``), and a host synchronization (a data-dependent shape) makes the host wait
  until the GPU has drained, then pay ``host_sync_s`` before it issues again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from archsim.errors import ArchsimError
from archsim.hw.base import DeviceModel
from archsim.hw.gpu import GpuMapping
from archsim.hw.machine import Machine
from archsim.ir.ops import Elementwise, Norm, Op
from archsim.validate.readers import FLUSHED_DIRTY_L2_SHARE, LoweredRow


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


@dataclass(frozen=True)
class KernelContext:
    """How the kernels of one measurement ran, as far as the GPU model needs to know.

    Attributes
    ----------
    l2_flushed:
        True: the L2 was flushed (holds dirty lines); False: left warm; None: unknown (cold).
    attention_backend:
        Attention kernel library, or None.
    sparse_algorithm:
        ``searched`` or ``default``.
    kernel_only:
        Price kernel execution only (profiler kernel durations exclude launches).
    activations_in_l2:
        Inputs of streaming kernels (elementwise, norms) were just written by the previous
        kernel and are still in L2 (kernels back to back in a layer).
    """

    l2_flushed: bool | None = None
    attention_backend: str | None = None
    sparse_algorithm: str = "searched"
    kernel_only: bool = False
    activations_in_l2: bool = False


def kernel_mapping(device: DeviceModel, op: Op, context: KernelContext, *, queued: bool) -> object:
    """The mapping that tells ``device`` the measurement's conditions (None for non-GPU devices)."""
    if device.kind != "gpu":
        return None
    warm = context.l2_flushed is False or (
        context.activations_in_l2 and isinstance(op, Elementwise | Norm)
    )
    dirty = FLUSHED_DIRTY_L2_SHARE if context.l2_flushed and not warm else 0.0
    return GpuMapping(
        warm_l2=warm,
        dirty_l2_share=dirty,
        attention_backend=context.attention_backend,
        sparse_algorithm=context.sparse_algorithm,
        queued=queued,
        kernel_only=context.kernel_only,
    )


def predict_ops(
    ops: Sequence[Op],
    device: DeviceModel,
    *,
    eager_multi_kernel: bool = False,
    host_launch_s: float | None = None,
    graph: bool = False,
    host_syncs: Sequence[int] = (),
    queue_head_start_s: float = 0.0,
    context: KernelContext | None = None,
) -> Prediction:
    """Predict the time of ``ops`` run back to back on ``device``.

    Parameters
    ----------
    ops:
        The ops of one measured row (or of one traced aten op), in launch order.
    device:
        The device model that prices each op with ``cost(op, mapping).latency_s``.
    eager_multi_kernel:
        True when the measurement includes host launch gaps between the kernels.
    host_launch_s:
        Host time to issue one eager kernel launch, in seconds; None takes the device's own figure
        (``host_launch_s`` of a GPU config, else 0). 0 predicts GPU time only.
    graph:
        The kernels replay from a CUDA graph (queued back to back, no host involved).
    host_syncs:
        Positions in ``ops`` after which the host waits for the GPU.
    queue_head_start_s:
        Host time already spent issuing launches when the first kernel starts, in seconds.
    context:
        The measurement's L2 state, attention backend, sparse algorithm.

    Returns
    -------
    Prediction
        The latency in seconds, or the first op the device does not support.
    """
    if host_launch_s is None:
        host_launch_s = float(getattr(device, "host_launch_s", 0.0))
    if host_launch_s < 0:
        raise ArchsimError(f"host launch time must be >= 0 s, got {host_launch_s}")
    context = context or KernelContext()
    sync_s = float(getattr(device, "host_sync_s", 0.0))
    # an eager op that allocates its output costs the host more than the bare launch
    alloc_s = float(getattr(device, "host_alloc_s", 0.0)) if host_launch_s > 0 else 0.0
    syncs = set(host_syncs)
    host_s = -queue_head_start_s  # when the host issues the next launch
    gpu_end_s = 0.0  # when the GPU finishes the last issued kernel
    for position, op in enumerate(ops):
        if not device.supports(op):
            return Prediction(
                None,
                f"device '{device.name}' ({device.kind}) does not support {op.kind} in "
                f"{op.dtype.value}",
            )
        if eager_multi_kernel and host_launch_s > 0:
            start_s = max(host_s, gpu_end_s)
            queued = position > 0 and host_s <= gpu_end_s
            host_s += host_launch_s + alloc_s
        else:
            start_s = gpu_end_s
            queued = position > 0 and (graph or eager_multi_kernel)
        mapping = kernel_mapping(device, op, context, queued=queued)
        gpu_end_s = start_s + device.cost(op, mapping).latency_s
        if position in syncs and eager_multi_kernel:
            host_s = max(host_s, gpu_end_s) + sync_s
    return Prediction(gpu_end_s)


def predict_row(
    row: LoweredRow, device: DeviceModel, *, host_launch_s: float | None = None
) -> Prediction:
    """Predict one lowered measured row with the conditions it was measured under."""
    context = KernelContext(
        l2_flushed=row.l2_flushed,
        attention_backend=row.attention_backend,
        sparse_algorithm=row.sparse_algorithm,
        activations_in_l2=len(row.ops) > 1,
    )
    return predict_ops(
        row.ops,
        device,
        eager_multi_kernel=row.eager_multi_kernel,
        host_launch_s=host_launch_s,
        graph=row.graph,
        host_syncs=row.host_syncs,
        queue_head_start_s=row.queue_head_start_s,
        context=context,
    )


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
