"""How many tokens each expert of a mixture-of-experts layer receives.

Counts are integers that sum exactly to ``tokens * top_k`` (every token picks ``top_k`` experts)
and never exceed ``tokens`` (a token picks distinct experts, so an expert sees each token at most
once). Real-valued shares are capped at ``tokens`` by water-filling, then rounded with the
largest-remainder method, ties to the lower expert index, so the result is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from archsim.config.workload import ExplicitRouting, RoutingSpec, UniformRouting, ZipfRouting
from archsim.errors import ArchsimError


def expert_token_counts(
    routing: RoutingSpec,
    *,
    tokens: int,
    experts: int,
    top_k: int,
    field: str = "workload.routing",
) -> tuple[int, ...]:
    """Tokens routed to each expert, in expert order.

    Parameters
    ----------
    routing:
        ``uniform``, ``zipf`` (expert i, counted from 0, gets a share ~ 1 / (i + 1)^exponent) or
        ``explicit`` counts.
    tokens:
        Tokens entering the layer.
    experts:
        Routed experts.
    top_k:
        Experts each token picks.
    field:
        Dotted path of the routing spec, used in error messages.

    Returns
    -------
    tuple[int, ...]
        ``experts`` counts, each in ``[0, tokens]``, summing to ``tokens * top_k``.

    Raises
    ------
    ArchsimError
        When ``top_k`` exceeds ``experts`` or explicit counts are inconsistent.
    """
    if top_k > experts:
        raise ArchsimError(f"{field}: top_k {top_k} exceeds the {experts} experts")
    return _BY_DISTRIBUTION[routing.distribution](routing, tokens, experts, top_k, field)


def _uniform(
    routing: UniformRouting, tokens: int, experts: int, top_k: int, field: str
) -> tuple[int, ...]:
    return _apportion([1.0] * experts, tokens * top_k, cap=tokens)


def _zipf(
    routing: ZipfRouting, tokens: int, experts: int, top_k: int, field: str
) -> tuple[int, ...]:
    weights = [1.0 / (rank + 1) ** routing.exponent for rank in range(experts)]
    return _apportion(weights, tokens * top_k, cap=tokens)


def _explicit(
    routing: ExplicitRouting, tokens: int, experts: int, top_k: int, field: str
) -> tuple[int, ...]:
    counts = tuple(routing.counts)
    if len(counts) != experts:
        raise ArchsimError(f"{field}.counts: {len(counts)} counts given for {experts} experts")
    if sum(counts) != tokens * top_k:
        raise ArchsimError(
            f"{field}.counts: counts sum to {sum(counts)}, but {tokens} tokens x top_k {top_k} "
            f"= {tokens * top_k} routed copies"
        )
    for index, count in enumerate(counts):
        if count > tokens:
            raise ArchsimError(
                f"{field}.counts[{index}]: {count} tokens exceeds the {tokens} tokens of the "
                "layer (a token picks distinct experts)"
            )
    return counts


def _apportion(weights: Sequence[float], total: int, cap: int) -> tuple[int, ...]:
    """Split ``total`` in proportion to ``weights``, no part above ``cap``, summing exactly."""
    shares = _capped_shares(weights, total, cap)
    floors = [min(cap, math.floor(share)) for share in shares]
    missing = total - sum(floors)
    eligible = sorted(
        (i for i in range(len(shares)) if floors[i] < cap),
        key=lambda i: (-(shares[i] - floors[i]), i),
    )
    if not 0 <= missing <= len(eligible):
        raise ArchsimError(
            f"cannot route {total} copies over {len(shares)} experts of {cap} tokens"
        )
    for index in eligible[:missing]:
        floors[index] += 1
    return tuple(floors)


def _capped_shares(weights: Sequence[float], total: int, cap: int) -> list[float]:
    """Proportional shares with water-filling: a share above ``cap`` is pinned to it and the rest
    is spread again over the other experts, until none exceeds the cap."""
    shares = [0.0] * len(weights)
    free = list(range(len(weights)))
    remaining = float(total)
    while free:
        weight_sum = sum(weights[i] for i in free)
        trial = {i: remaining * weights[i] / weight_sum for i in free}
        over = [i for i in free if trial[i] >= cap]
        if not over:
            for i in free:
                shares[i] = trial[i]
            break
        for i in over:
            shares[i] = float(cap)
            remaining -= cap
        free = [i for i in free if i not in over]
    return shares


_BY_DISTRIBUTION: dict[str, Callable[..., tuple[int, ...]]] = {
    "uniform": _uniform,
    "zipf": _zipf,
    "explicit": _explicit,
}
