"""System level: devices of one machine running concurrently, contending for the shared memory.

``simulate()`` runs a schedule op after op. This module is the opt-in SimPy level for machines
whose devices overlap: an NPU or GPU beside PIM in the same memory stacks. It simulates LLM
decode steps layer by layer, with

* per-op device choice: GEMMs on the compute device, decode attention on the PIM device, and
  (Duplex) MoE experts on whichever device finishes them sooner, which is a choice by Op/B;
* NeuPIMs' per-request channels: when the PIM device keeps each request's KV cache in one
  channel, attention runs as two phases (score GEMVs, then context GEMVs) each ending with the
  busiest channel, with the scores' softmax on the compute device's vector unit between them;
* NeuPIMs' sub-batch interleaving: the batch splits in two (per channel, half of each channel's
  requests to each sub-batch, as NeuPIMs groups them) and one sub-batch's attention on PIM
  overlaps the other's GEMMs on the NPU;
* Duplex's expert co-processing: the experts of a decode step split between the compute device
  and Logic-PIM so that both work at once, decode attention on Logic-PIM;
* contention: a blocked-mode PIM (single row buffer) and the compute device take turns on the
  memory; a dual-row-buffer PIM with per-request channels takes the column-command slots its
  commands need and leaves the rest of each channel to the host; a PIM with its own path to
  the banks (Duplex's bank bundles) takes nothing from the compute device; otherwise each op's
  memory demand (bytes over its standalone time) is summed with the demands of the ops running
  beside it, and beyond the banks' sustained bandwidth every op running then is slowed in
  proportion;
* continuous batching of a request stream (arrivals, mixed prompt and output lengths), giving
  tokens/s and per-token latency, and its steady state with a fixed batch in flight.

Coarse events only (one per op per layer): SimPy's budget is about a million events a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import simpy

from archsim.energy.pricing import action_energy_j
from archsim.errors import ArchsimError
from archsim.hw.base import OpCost
from archsim.hw.machine import Machine
from archsim.hw.pim import PimPhase
from archsim.ir.ops import Attention, Op, Softmax, attention, gemm
from archsim.ir.tensor import DType, Tensor
from archsim.workloads.models.presets import ModelArchitecture


@dataclass(frozen=True)
class SystemPlan:
    """Where each kind of work runs and how the batch is split.

    Attributes
    ----------
    compute:
        Device running the GEMMs (QKV, projection, FFN) and everything the others do not take.
    attention:
        Device running decode attention (a PIM device, or ``compute`` itself).
    sub_batches:
        1, or 2 for NeuPIMs' sub-batch interleaving.
    co_processing:
        Duplex's expert co-processing: each expert of a decode step goes to ``compute`` or
        ``attention``, whichever finishes the layer's experts sooner. Decode attention stays
        on ``attention`` (Duplex's attention co-processing only moves prefill attention to the
        xPU, Yun et al. MICRO 2024 Sec. 5.2).
    experts_on_attention:
        Duplex without co-processing: the MoE layers of decode steps run on ``attention``
        (Logic-PIM), one processor at a time (Sec. 4 and Fig. 10(a)).
    """

    compute: str
    attention: str
    sub_batches: int = 1
    co_processing: bool = False
    experts_on_attention: bool = False


@dataclass(frozen=True)
class StepResult:
    """One decode step of a batch.

    Attributes
    ----------
    latency_s:
        Time of the step (all layers, all sub-batches).
    energy_j:
        Dynamic energy of every op plus the machine's static power over ``latency_s``.
    busy_s:
        Time each device spent running ops.
    tokens:
        Tokens produced (one per request).
    """

    latency_s: float
    energy_j: float
    busy_s: dict[str, float]
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.latency_s


@dataclass(frozen=True)
class Request:
    """One request of a stream: arrival time (s), prompt tokens, tokens to generate."""

    arrival_s: float
    prompt_len: int
    output_len: int


@dataclass(frozen=True)
class ServingResult:
    """A request stream served with continuous batching."""

    makespan_s: float
    tokens: int
    energy_j: float
    mean_token_latency_s: float
    steps: int
    step_latencies_s: tuple[float, ...] = field(repr=False)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.makespan_s


class _Costs:
    """Op costs and energies on the machine's devices, cached (ops hash structurally)."""

    def __init__(self, machine: Machine):
        self.machine = machine
        self._cache: dict[tuple[str, Op], tuple[OpCost, float]] = {}
        self._phases: dict[tuple, tuple[tuple[PimPhase, float], ...]] = {}
        self._prices = {n: d.energy_per_action_j() for n, d in machine.devices.items()}

    def __call__(self, device: str, op: Op) -> tuple[OpCost, float]:
        key = (device, op)
        if key not in self._cache:
            dev = self.machine.devices[device]
            if not dev.supports(op):
                raise ArchsimError(
                    f"device '{device}' ({dev.kind}) cannot run op '{op.name}' ({op.kind})"
                )
            cost = dev.cost(op)
            self._cache[key] = (cost, action_energy_j(cost.actions, self._prices[device]))
        return self._cache[key]

    def latency_s(self, device: str, op: Op) -> float:
        return self(device, op)[0].latency_s

    def price_j(self, device: str, cost: OpCost) -> float:
        """Energy of a cost computed outside ``__call__`` (per-request PIM phases)."""
        return action_energy_j(cost.actions, self._prices[device])

    def pim_phases(self, device: str, layer: _Layer) -> tuple[tuple[PimPhase, float], ...]:
        """The phases of a layer's attention on a per-request-channel PIM, with energies."""
        assert layer.channels is not None
        key = (device, tuple(layer.contexts), tuple(layer.channels))
        if key not in self._phases:
            phases = self.machine.devices[device].attention_phases(
                layer.contexts,
                layer.channels,
                heads_q=layer.heads,
                heads_kv=layer.kv_heads,
                head_dim=layer.head_dim,
                dtype=layer.dtype,
            )
            self._phases[key] = tuple((p, self.price_j(device, p.cost)) for p in phases)
        return self._phases[key]


class _Memory:
    """The shared stacks: a blocked-mode lock, summed bandwidth demands, or (dual row buffers,
    per-request channels) the column-command bus that PIM commands take from host reads."""

    def __init__(self, env: simpy.Environment, capacity_bytes_per_s: float, exclusive: bool):
        self.env = env
        self.lock = simpy.Resource(env, capacity=1) if exclusive else None
        self.capacity = capacity_bytes_per_s
        self.demand: dict[int, float] = {}
        self.column_bus: dict[int, tuple[float, float]] = {}  # token -> (PIM share, end time)

    def slowdown(self, own_demand: float) -> float:
        total = own_demand + sum(self.demand.values())
        return max(1.0, total / self.capacity) if self.capacity > 0 else 1.0

    def host_duration_s(self, latency_s: float, demand: float, host_bw: float) -> float:
        """A host op beside running PIM phases: while they hold a share of the column bus the
        op's reads get the rest of the channel bandwidth (PIM commands go first, as NeuPIMs'
        controller checks its PIM queue first); after the PIM phase ends it runs at full rate."""
        if not self.column_bus or host_bw <= 0 or demand <= 0:
            return latency_s
        share, end = max(self.column_bus.values())
        rate = min(1.0, host_bw * (1.0 - share) / demand)
        if rate <= 0:
            return latency_s + max(0.0, end - self.env.now)
        overlap = max(0.0, end - self.env.now)
        if latency_s / rate <= overlap:
            return latency_s / rate
        return overlap + (latency_s - overlap * rate)


class _Layer:
    """The ops of one transformer block for one (sub-)batch, split by tensor parallelism."""

    def __init__(
        self,
        arch: ModelArchitecture,
        contexts: Sequence[int],
        tp: int,
        dtype: DType,
        channels: Sequence[int] | None = None,
        expert_parallel: int = 1,
        dense: bool = False,
    ):
        batch = len(contexts)
        heads, kv_heads = arch.heads // tp, max(1, arch.kv_heads // tp)
        hd, d = arch.head_dim, arch.d_model
        self.qkv = [gemm("qkv", batch, (heads + 2 * kv_heads) * hd, d, dtype)]
        self.post: list[Op] = [gemm("o_proj", batch, d, heads * hd, dtype)]
        matrices = 3 if arch.activation == "swiglu" else 2
        if arch.is_moe and not dense:
            if expert_parallel < 1 or arch.experts % expert_parallel:
                raise ArchsimError(
                    f"expert_parallel must divide the {arch.experts} experts of {arch.name}, "
                    f"got {expert_parallel}"
                )
            # uniform routing: the batch's top-k picks spread evenly over the experts
            routed = batch * arch.top_k
            self.experts = [
                (routed // arch.experts + (1 if e < routed % arch.experts else 0))
                for e in range(arch.experts)
            ]
            if expert_parallel > 1:
                # expert parallelism: this device holds experts // ep whole experts and runs
                # the tokens every device routes to them
                d_ff = arch.expert_d_ff
                local = self.experts[: arch.experts // expert_parallel]
            else:
                # tensor parallelism: every expert split tp ways
                d_ff = arch.expert_d_ff // tp
                local = self.experts
            self.expert_ops = [
                [gemm("up", m, d_ff * (matrices - 1), d, dtype), gemm("down", m, d, d_ff, dtype)]
                for m in local
                if m > 0
            ]
        else:
            d_ff = arch.d_ff // tp
            self.post += [
                gemm("up", batch, d_ff * (matrices - 1), d, dtype),
                gemm("down", batch, d, d_ff, dtype),
            ]
            self.expert_ops = []
        self.contexts = list(contexts)
        self.channels = None if channels is None else [int(c) for c in channels]
        self.heads, self.kv_heads, self.head_dim, self.dtype = heads, kv_heads, hd, dtype

    def attention_op(self, requests: int, mean_context: int) -> Attention:
        return attention(
            "attention",
            batch=requests,
            heads_q=self.heads,
            heads_kv=self.kv_heads,
            q_len=1,
            kv_len=max(1, mean_context),
            head_dim=self.head_dim,
            causal=False,
            dtype=self.dtype,
        )

    def softmax_op(self) -> Softmax:
        """The scores of every query head over its context, as the host's softmax sees them."""
        scores = (self.heads, sum(self.contexts))
        return Softmax(
            "scores_softmax",
            x=Tensor("scores", scores, self.dtype),
            out=Tensor("probs", scores, self.dtype),
        )


def _split_by_channel(
    contexts: Sequence[int], channels: Sequence[int], n_channels: int
) -> list[tuple[list[int], list[int]]]:
    """NeuPIMs' simple sub-batch partition ([NeuPIMs-repo] src/scheduler/Scheduler.cc
    ``group_sub_batches``): the first half of each channel's requests forms sub-batch one, the
    rest sub-batch two; an odd count gives the extra request to each sub-batch in turn."""
    parts: list[tuple[list[int], list[int]]] = [([], []), ([], [])]
    ceil_turn = True
    for ch in range(n_channels):
        members = [i for i, c in enumerate(channels) if c == ch]
        first = len(members) // 2
        if len(members) % 2:
            first += 1 if ceil_turn else 0
            ceil_turn = not ceil_turn
        for rank, i in enumerate(members):
            part = parts[0 if rank < first else 1]
            part[0].append(int(contexts[i]))
            part[1].append(ch)
    return parts


def _checked_channels(channels: Sequence[int], requests: int, n_channels: int) -> list[int]:
    """A request trace's channel placement, one channel in ``[0, n_channels)`` per request."""
    placed = [int(c) for c in channels]
    if len(placed) != requests:
        raise ArchsimError(
            f"channels: {len(placed)} channel assignments for {requests} requests (one each)"
        )
    bad = [c for c in placed if not 0 <= c < n_channels]
    if bad:
        raise ArchsimError(
            f"channels: channel {bad[0]} out of range, the PIM device has channels 0 to "
            f"{n_channels - 1}"
        )
    return placed


def _mean_context(contexts: Sequence[int], bucket: int) -> int:
    # attention is linear in the KV bytes, so the mean context of the batch carries its total;
    # rounding to a bucket lets identical steps reuse cached costs
    mean = sum(contexts) / len(contexts)
    return int(bucket * max(1, round(mean / bucket)))


def decode_layer_ops(
    arch: ModelArchitecture,
    contexts: Sequence[int],
    *,
    tensor_parallel: int = 1,
    dtype: DType = DType.BF16,
    context_bucket: int = 16,
) -> list[Op]:
    """The ops of one dense block of a decode step in launch order, as one device runs them.

    The same ops :func:`simulate_decode_step` prices when ``plan.attention == plan.compute``
    (QKV, attention over the batch's mean context, projection, FFN), for callers that play them
    through another timing model, such as an eager framework's launch queue.
    """
    layer = _Layer(arch, contexts, tensor_parallel, dtype, dense=True)
    attention_op = layer.attention_op(len(contexts), _mean_context(contexts, context_bucket))
    return [*layer.qkv, attention_op, *layer.post]


def simulate_decode_step(
    machine: Machine,
    arch: ModelArchitecture,
    contexts: Sequence[int],
    plan: SystemPlan,
    *,
    tensor_parallel: int = 1,
    dtype: DType = DType.BF16,
    context_bucket: int = 16,
    costs: _Costs | None = None,
    expert_parallel: int = 1,
    channels: Sequence[int] | None = None,
) -> StepResult:
    """One decode step of ``len(contexts)`` requests with the given KV-cache lengths.

    Parameters
    ----------
    machine:
        The devices; ``plan`` names which ones run what.
    arch:
        Model shape; ``tensor_parallel`` divides heads and FFN widths (one device's share; the
        all-reduces between devices are left out, alike for every system compared).
    contexts:
        Tokens already in each request's KV cache.
    channels:
        PIM channel of each request, as a request trace places them (NeuPIMs' traces carry one
        per request); ``None`` lets the PIM device place them with its ``channel_policy``. Only
        used when the attention device keeps each request's KV cache in one channel.
    """
    for name in (plan.compute, plan.attention):
        if name not in machine.devices:
            raise ArchsimError(
                f"system plan names device '{name}', machine '{machine.name}' has "
                f"{sorted(machine.devices)}"
            )
    if plan.sub_batches not in (1, 2) or len(contexts) < plan.sub_batches:
        raise ArchsimError(f"sub_batches must be 1 or 2 and <= the batch, got {plan.sub_batches}")
    costs = costs or _Costs(machine)
    env = simpy.Environment()
    attn_dev = machine.devices[plan.attention]
    separate = plan.attention != plan.compute
    exclusive = separate and bool(getattr(attn_dev, "blocks_host_memory", False))
    # a device whose reads take their own path to the banks (Duplex's bank bundles) leaves the
    # compute device's bandwidth alone
    shared = separate and bool(getattr(attn_dev, "shares_host_bandwidth", True))
    memory = _Memory(env, attn_dev.peak_bw_bytes_per_s() if shared else 0.0, exclusive)
    per_channel = separate and bool(getattr(attn_dev, "maps_requests_to_channels", False))
    host_bw = attn_dev.config.dram.bw_bytes_per_s if per_channel else 0.0
    units = {plan.compute: simpy.Resource(env, 1)}
    if separate:
        units[plan.attention] = simpy.Resource(env, 1)
    busy = {name: 0.0 for name in units}
    energy = [0.0]
    ids = iter(range(1 << 60))

    def run(device: str, op: Op):
        yield from run_cost(device, *costs(device, op))

    def run_cost(device: str, cost: OpCost, op_energy: float, column_share: float = 0.0):
        energy[0] += op_energy
        with units[device].request() as unit:
            yield unit
            if per_channel and memory.lock is None:
                token = next(ids)
                if device == plan.attention:
                    memory.column_bus[token] = (column_share, env.now + cost.latency_s)
                    duration = cost.latency_s
                else:
                    dram_bytes = cost.bytes_by_level.get("dram", 0.0) + cost.bytes_by_level.get(
                        "hbm", 0.0
                    )
                    duration = memory.host_duration_s(
                        cost.latency_s, dram_bytes / cost.latency_s, host_bw
                    )
                yield env.timeout(duration)
                memory.column_bus.pop(token, None)
                busy[device] += duration
                return
            if memory.lock is not None:
                with memory.lock.request() as held:
                    yield held
                    yield env.timeout(cost.latency_s)
                busy[device] += cost.latency_s
                return
            # only DRAM traffic draws on the banks (scratchpad and L2 bytes do not)
            dram_bytes = cost.bytes_by_level.get("dram", 0.0) + cost.bytes_by_level.get("hbm", 0.0)
            demand = dram_bytes / cost.latency_s if separate else 0.0
            duration = cost.latency_s * memory.slowdown(demand)
            token = next(ids)
            memory.demand[token] = demand
            yield env.timeout(duration)
            del memory.demand[token]
            busy[device] += duration

    def run_all(device: str, ops: Sequence[Op]):
        for op in ops:
            yield from run(device, op)

    def split_attention(layer: _Layer):
        requests = len(layer.contexts)
        if layer.channels is not None:
            # the scores go to the host's vector unit for the softmax (beside its arrays, so it
            # does not wait for their GEMMs): between the phases in blocked mode, hidden behind
            # the next heads' GEMVs with dual row buffers (a single phase)
            phases = costs.pim_phases(plan.attention, layer)
            softmax_cost, softmax_energy = costs(plan.compute, layer.softmax_op())
            energy[0] += softmax_energy
            for i, (phase, phase_energy) in enumerate(phases):
                if i:
                    yield env.timeout(softmax_cost.latency_s)
                yield from run_cost(
                    plan.attention, phase.cost, phase_energy, phase.column_bus_share
                )
            return
        mean = _mean_context(layer.contexts, context_bucket)
        yield from run(plan.attention, layer.attention_op(requests, mean))

    def experts(layer: _Layer):
        if not layer.expert_ops:
            return
        every = [op for pair in layer.expert_ops for op in pair]
        if plan.experts_on_attention and separate:
            yield from run_all(plan.attention, every)
            return
        if not (plan.co_processing and separate):
            yield from run_all(plan.compute, every)
            return
        # Duplex: each expert goes to the device on which the layer's experts finish sooner,
        # given what that device already holds; low-Op/B experts are cheap on Logic-PIM and
        # high-Op/B ones on the xPU, so the split follows Op/B
        on: dict[str, list[Op]] = {plan.compute: [], plan.attention: []}
        queued = {plan.compute: 0.0, plan.attention: 0.0}
        for pair in sorted(layer.expert_ops, key=lambda p: -p[0].m):
            spans = {
                dev: queued[dev] + sum(costs.latency_s(dev, op) for op in pair) for dev in queued
            }
            dev = min(spans, key=lambda d: spans[d])
            queued[dev] = spans[dev]
            on[dev].extend(pair)
        parts = [env.process(run_all(dev, ops)) for dev, ops in on.items() if ops]
        yield simpy.AllOf(env, parts)

    def sub_batch(blocks: tuple[_Layer, _Layer]):
        moe, dense = blocks
        for index in range(arch.layers):
            layer = moe if arch.is_moe_layer(index) else dense
            yield from run_all(plan.compute, layer.qkv)
            yield from split_attention(layer)
            yield from run_all(plan.compute, layer.post)
            yield from experts(layer)

    if per_channel and not plan.co_processing:
        heads, kv_heads = arch.heads // tensor_parallel, max(1, arch.kv_heads // tensor_parallel)
        if channels is None:
            channels = attn_dev.assign_channels(
                contexts, heads_q=heads, heads_kv=kv_heads, head_dim=arch.head_dim, dtype=dtype
            )
        else:
            channels = _checked_channels(channels, len(contexts), attn_dev.config.channels)
        if plan.sub_batches == 2:
            parts = _split_by_channel(contexts, channels, attn_dev.config.channels)
        else:
            parts = [(list(contexts), list(channels))]
    else:
        size = len(contexts) // plan.sub_batches
        chunks = [contexts[:size], contexts[size:]] if plan.sub_batches == 2 else [contexts]
        parts = [(chunk, None) for chunk in chunks]
    for part, chs in parts:
        if not part:
            continue
        # an MoE model's dense blocks (leading, or GLaM's every other) run the dense FFN
        blocks = tuple(
            _Layer(
                arch,
                part,
                tensor_parallel,
                dtype,
                channels=chs,
                expert_parallel=expert_parallel,
                dense=dense,
            )
            for dense in (False, True)
        )
        env.process(sub_batch(blocks))
    env.run()
    latency = env.now
    return StepResult(
        latency_s=latency,
        energy_j=energy[0] + machine.static_power_w() * latency,
        busy_s=busy,
        tokens=len(contexts),
    )


@dataclass(frozen=True)
class SteadyServing:
    """Continuous batching in steady state (see :func:`steady_state_serving`).

    Attributes
    ----------
    tokens_per_s:
        Output tokens per second.
    energy_per_token_j:
        Dynamic and static energy per output token.
    decode_step_s:
        One decode step of the full batch.
    prefill_s:
        One prompt's prefill.
    """

    tokens_per_s: float
    energy_per_token_j: float
    decode_step_s: float
    prefill_s: float


def steady_state_serving(
    machine: Machine,
    arch: ModelArchitecture,
    plan: SystemPlan,
    *,
    batch: int,
    input_len: int,
    output_len: int,
    tensor_parallel: int = 1,
    expert_parallel: int = 1,
    dtype: DType = DType.BF16,
) -> SteadyServing:
    """Continuous batching with ``batch`` requests always in flight, each finished request
    replaced at once by a new one (as Duplex serves, Yun et al. MICRO 2024, Sec. 6).

    Over ``output_len`` decode steps every slot turns over once, so ``batch`` prompts of
    ``input_len`` tokens are prefilled (on the compute device) per ``batch * output_len``
    generated tokens; the in-flight requests' KV caches are spread evenly over
    ``[input_len, input_len + output_len)``.
    """
    if batch < 1 or input_len < 1 or output_len < 1:
        raise ArchsimError(
            f"batch, input_len and output_len must be positive, got {batch}, {input_len}, "
            f"{output_len}"
        )
    costs = _Costs(machine)
    contexts = [input_len + int((i + 0.5) * output_len / batch) for i in range(batch)]
    step = simulate_decode_step(
        machine,
        arch,
        contexts,
        plan,
        tensor_parallel=tensor_parallel,
        dtype=dtype,
        costs=costs,
        expert_parallel=expert_parallel,
    )
    prefill_s, prefill_j = _prefill_cost(
        costs, plan.compute, arch, input_len, tensor_parallel, dtype
    )
    prefill_j += machine.static_power_w() * prefill_s
    period_s = output_len * step.latency_s + batch * prefill_s
    tokens = batch * output_len
    energy_j = output_len * step.energy_j + batch * prefill_j
    return SteadyServing(
        tokens_per_s=tokens / period_s,
        energy_per_token_j=energy_j / tokens,
        decode_step_s=step.latency_s,
        prefill_s=prefill_s,
    )


def serve_requests(
    machine: Machine,
    arch: ModelArchitecture,
    requests: Sequence[Request],
    plan: SystemPlan,
    *,
    max_batch: int,
    tensor_parallel: int = 1,
    dtype: DType = DType.BF16,
) -> ServingResult:
    """Continuous batching: each step admits arrived requests (prefilling their prompts on the
    compute device), runs one decode step of every active request, and retires finished ones.

    Returns tokens/s over the whole stream and the mean time between a request's tokens.
    """
    if not requests:
        raise ArchsimError("serve_requests needs at least one request")
    costs = _Costs(machine)
    pending = sorted(requests, key=lambda r: r.arrival_s)
    active: list[list[int]] = []  # [context, remaining]
    clock = energy = 0.0
    tokens = steps = 0
    latencies: list[float] = []
    static_w = machine.static_power_w()
    while pending or active:
        if not active and pending and pending[0].arrival_s > clock:
            clock = pending[0].arrival_s
        while pending and pending[0].arrival_s <= clock and len(active) < max_batch:
            r = pending.pop(0)
            step_s, step_j = _prefill_cost(
                costs, plan.compute, arch, r.prompt_len, tensor_parallel, dtype
            )
            energy += step_j + static_w * step_s
            clock += step_s
            active.append([r.prompt_len, r.output_len])
        contexts = [a[0] for a in active]
        sub = plan.sub_batches if len(contexts) >= plan.sub_batches else 1
        step_plan = SystemPlan(
            plan.compute, plan.attention, sub, plan.co_processing, plan.experts_on_attention
        )
        step = simulate_decode_step(
            machine,
            arch,
            contexts,
            step_plan,
            tensor_parallel=tensor_parallel,
            dtype=dtype,
            costs=costs,
        )
        clock += step.latency_s
        energy += step.energy_j
        tokens += step.tokens
        steps += 1
        latencies.extend([step.latency_s] * step.tokens)
        for a in active:
            a[0] += 1
            a[1] -= 1
        active = [a for a in active if a[1] > 0]
    return ServingResult(
        makespan_s=clock,
        tokens=tokens,
        energy_j=energy,
        mean_token_latency_s=sum(latencies) / len(latencies),
        steps=steps,
        step_latencies_s=tuple(latencies),
    )


def _prefill_cost(
    costs: _Costs, device: str, arch: ModelArchitecture, prompt: int, tp: int, dtype: DType
) -> tuple[float, float]:
    """(seconds, joules) of one prompt's prefill on ``device``, every block of the model."""
    moe_blocks = sum(arch.is_moe_layer(i) for i in range(arch.layers))
    latency_s = energy_j = 0.0
    for moe, blocks in ((True, moe_blocks), (False, arch.layers - moe_blocks)):
        if blocks == 0:
            continue
        for op in _prefill_ops(arch, prompt, tp, dtype, moe=moe):
            cost, op_energy = costs(device, op)
            latency_s += cost.latency_s * blocks
            energy_j += op_energy * blocks
    return latency_s, energy_j


def _prefill_ops(
    arch: ModelArchitecture, prompt: int, tp: int, dtype: DType, *, moe: bool
) -> list[Op]:
    heads, kv_heads = arch.heads // tp, max(1, arch.kv_heads // tp)
    hd, d = arch.head_dim, arch.d_model
    # a prompt's tokens reach every expert: the MoE block's FLOPs are top_k dense FFNs
    d_ff = (arch.expert_d_ff * arch.top_k if moe else arch.d_ff) // tp
    matrices = 3 if arch.activation == "swiglu" else 2
    return [
        gemm("qkv", prompt, (heads + 2 * kv_heads) * hd, d, dtype),
        attention(
            "attention",
            batch=1,
            heads_q=heads,
            heads_kv=kv_heads,
            q_len=prompt,
            kv_len=prompt,
            head_dim=hd,
            causal=True,
            dtype=dtype,
        ),
        gemm("o_proj", prompt, d, heads * hd, dtype),
        gemm("up", prompt, d_ff * (matrices - 1), d, dtype),
        gemm("down", prompt, d, d_ff, dtype),
    ]
