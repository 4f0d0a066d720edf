"""The operator graph: a DAG of frozen ops whose edges follow the tensors they share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import networkx as nx

from archsim.ir.ops import Attention, Op
from archsim.ir.tensor import Tensor


@dataclass(frozen=True)
class GraphSummary:
    """Totals of a graph, for ``archsim show`` and reports."""

    name: str
    op_count: int
    ops_by_kind: dict[str, int]
    flops: float
    bytes: float
    weight_bytes: float
    parameter_count: int

    @property
    def op_per_byte(self) -> float:
        return self.flops / self.bytes if self.bytes else float("inf")


class OpGraph:
    """A DAG with one op per node; an edge ``u -> v`` means v reads a tensor u writes.

    Ops are kept in insertion order, which the builders make topological; ``ops()`` checks that
    the order is valid once, when the graph is built.
    """

    def __init__(self, name: str, ops: Iterable[Op]):
        self.name = name
        self._ops: list[Op] = []
        self._graph = nx.DiGraph()
        # derived once on first use: sweeps ask again for every design point
        self._distinct: tuple[Op, ...] | None = None
        self._resident: tuple[tuple[Tensor, ...], float] | None = None
        producer: dict[str, str] = {}
        for op in ops:
            if op.name in self._graph:
                raise ValueError(f"graph '{name}': two ops are named '{op.name}'")
            self._graph.add_node(op.name, op=op)
            self._ops.append(op)
            for tensor in op.inputs():
                if tensor.name in producer:
                    self._graph.add_edge(producer[tensor.name], op.name, tensor=tensor.name)
            for tensor in op.outputs():
                producer[tensor.name] = op.name

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops)

    def ops(self) -> list[Op]:
        return list(self._ops)

    def op(self, name: str) -> Op:
        return self._graph.nodes[name]["op"]

    @property
    def nx_graph(self) -> nx.DiGraph:
        """The underlying networkx graph (nodes are op names, attribute ``op``)."""
        return self._graph

    def predecessors(self, name: str) -> list[str]:
        return list(self._graph.predecessors(name))

    def weights(self) -> dict[str, Tensor]:
        """Distinct weight tensors by name (a weight read by several ops counts once), including
        weights that must be resident although no op of this run reads them (idle experts)."""
        found: dict[str, Tensor] = {}
        for op in self._ops:
            for tensor in (*op.inputs(), *op.resident_weights()):
                if tensor.is_weight:
                    found.setdefault(tensor.name, tensor)
        return found

    def distinct_ops(self) -> tuple[Op, ...]:
        """One op per group of equal ops (ops compare by structure, names aside), first seen first.

        Repeated layers make most ops of a model equal, so what depends only on an op's
        structure (whether a device runs it, what it costs there) needs doing once per op here.
        """
        if self._distinct is None:
            self._distinct = tuple(dict.fromkeys(self._ops))
        return self._distinct

    def resident_tensors(self) -> tuple[tuple[Tensor, ...], float]:
        """Tensors that stay in device memory for the whole run, each once (by name), and the
        sum of their stored bytes.

        They are the weights ops read, the weights ops keep resident without reading them (idle
        experts) and the K/V caches attention reads, in the order of
        :func:`archsim.mappers.capacity.resident_bytes_by_device` so that a single device's sum
        is the same to the bit.
        """
        if self._resident is None:
            found: dict[str, Tensor] = {}
            for op in self._ops:
                resident = [t for t in op.inputs() if t.is_weight]
                resident += list(op.resident_weights())
                if isinstance(op, Attention):
                    resident += [op.k, op.v]
                for tensor in resident:
                    found.setdefault(tensor.name, tensor)
            total = 0.0
            for tensor in found.values():
                total += tensor.stored_bytes
            self._resident = (tuple(found.values()), total)
        return self._resident

    def parameter_count(self) -> int:
        return sum(t.numel for t in self.weights().values())

    def flops(self) -> float:
        return sum(op.flops() for op in self._ops)

    def bytes(self) -> float:
        return sum(op.bytes() for op in self._ops)

    def summary(self) -> GraphSummary:
        return GraphSummary(
            name=self.name,
            op_count=len(self._ops),
            ops_by_kind=dict(Counter(op.kind for op in self._ops)),
            flops=self.flops(),
            bytes=self.bytes(),
            weight_bytes=sum(t.stored_bytes for t in self.weights().values()),
            parameter_count=self.parameter_count(),
        )
