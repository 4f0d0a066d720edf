"""Lowering of workload specs: model sizes, routing, MoE structure, graph edges, shipped files."""

from __future__ import annotations

from importlib.resources import files

import networkx as nx
import pytest

from archsim.config.loader import load_workload, workload_from_text
from archsim.config.workload import (
    ExplicitRouting,
    UniformRouting,
    WorkloadConfig,
    ZipfRouting,
)
from archsim.errors import ArchsimError
from archsim.ir import NM, Attention, Dense, Gemm, MoeCombine, OpGraph
from archsim.workloads import lower, work_items
from archsim.workloads.routing import expert_token_counts


def _config(workload: dict, name: str = "w") -> WorkloadConfig:
    return WorkloadConfig.model_validate({"schema_version": 1, "name": name, "workload": workload})


def _transformer(model: str, phase: str = "decode", batch: int = 4, seq_len: int = 512, **extra):
    spec = {"generator": "transformer", "model": model, "phase": phase, "batch": batch}
    return _config({**spec, "seq_len": seq_len, **extra}, name=f"{model}-{phase}")


def _gemms(graph: OpGraph) -> list[Gemm]:
    return [op for op in graph if isinstance(op, Gemm)]


# Published totals: Llama 2 paper / model card (6.74B), Llama 3 model card (8.03B),
# Mixtral paper (46.7B), DeepSeekMoE paper (16.4B). Prefill of a long batch activates every expert.
@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("llama2-7b", 6.74e9),
        ("llama3-8b", 8.03e9),
        ("mixtral-8x7b", 46.7e9),
        ("deepseek-moe-16b", 16.4e9),
    ],
)
def test_parameter_count_matches_the_published_size(model, published):
    graph = lower(_transformer(model, phase="prefill", batch=2, seq_len=256))
    assert graph.parameter_count() == pytest.approx(published, rel=0.01)


def test_graph_is_named_after_the_workload():
    assert lower(_transformer("llama2-7b")).name == "llama2-7b-decode"


def test_decode_step_flops_are_two_per_parameter_per_token():
    batch = 4
    graph = lower(_transformer("llama2-7b", batch=batch, seq_len=1024))
    attention = sum(op.flops() for op in graph if isinstance(op, Attention))
    # the embedding lookup does no arithmetic, so allow for its 2% of the parameters
    assert graph.flops() - attention == pytest.approx(2 * graph.parameter_count() * batch, rel=0.03)


def test_decode_attention_is_gqa_over_the_cache_plus_the_new_token():
    batch, seq_len = 3, 700
    graph = lower(_transformer("llama3-8b", batch=batch, seq_len=seq_len))
    attn = [op for op in graph if isinstance(op, Attention)]
    assert len(attn) == 32
    first = attn[0]
    assert (first.heads_q, first.heads_kv, first.head_dim) == (32, 8, 128)
    assert (first.q_len, first.kv_len, first.causal) == (1, seq_len + 1, False)
    assert first.k.numel == batch * 8 * (seq_len + 1) * 128


def test_prefill_is_causal_over_the_prompt_and_the_head_sees_the_last_token():
    batch, seq_len = 2, 300
    graph = lower(_transformer("llama2-7b", phase="prefill", batch=batch, seq_len=seq_len))
    attn = next(op for op in graph if isinstance(op, Attention))
    assert (attn.q_len, attn.kv_len, attn.causal) == (seq_len, seq_len, True)
    wq = graph.op("layers.0.wq")
    assert (wq.m, wq.n, wq.k) == (batch * seq_len, 4096, 4096)
    lm_head = graph.op("lm_head")
    assert (lm_head.m, lm_head.n, lm_head.k) == (batch, 32000, 4096)


def test_work_items():
    assert work_items(_transformer("llama2-7b", phase="prefill", batch=2, seq_len=300)) == (
        600.0,
        "tokens",
    )
    assert work_items(_transformer("llama2-7b", batch=5)) == (5.0, "tokens")
    moe = {"generator": "moe_layer", "tokens": 96, "d_model": 64, "d_ff": 32, "experts": 4}
    assert work_items(_config({**moe, "top_k": 2})) == (96.0, "tokens")
    suite = _config({"generator": "gemm_suite", "shapes": [{"m": 1, "n": 8, "k": 8}]})
    assert work_items(suite) == (1.0, "suite")


def test_layers_truncates_and_cannot_exceed_the_model():
    graph = lower(_transformer("llama2-7b", layers=2))
    assert sum(isinstance(op, Attention) for op in graph) == 2
    with pytest.raises(ArchsimError, match=r"workload\.layers"):
        lower(_transformer("llama2-7b", layers=33))


def test_unknown_model_names_the_field_and_the_known_presets():
    config = workload_from_text(
        "schema_version: 1\nname: x\nworkload:\n  generator: transformer\n  model: llama9\n"
        "  phase: decode\n  batch: 1\n  seq_len: 8\n"
    ).config
    with pytest.raises(ArchsimError) as raised:
        lower(config)
    message = str(raised.value)
    assert "workload.model" in message and "llama9" in message and "llama2-7b" in message


def test_edges_follow_the_data():
    graph = lower(_transformer("llama3-8b", layers=2, include_lm_head=True))
    dag = graph.nx_graph
    assert nx.is_directed_acyclic_graph(dag)
    order = {op.name: i for i, op in enumerate(graph)}
    assert all(order[u] < order[v] for u, v in dag.edges)  # insertion order is topological
    assert set(graph.predecessors("layers.0.attn")) == {
        "layers.0.rope_q",
        "layers.0.k_cache_write",
        "layers.0.v_cache_write",
    }
    assert {"layers.0.wq", "layers.0.wk", "layers.0.wv"} <= nx.ancestors(dag, "layers.0.attn")
    assert "layers.0.attn" in graph.predecessors("layers.0.wo")
    assert "layers.0.ffn_residual" in graph.predecessors("layers.1.attn_norm")
    assert "embed" in nx.ancestors(dag, "lm_head")
    # one connected chain: everything but the embedding descends from it
    assert nx.descendants(dag, "embed") == set(order) - {"embed"}


def test_weights_are_named_per_layer_and_counted_once():
    graph = lower(_transformer("llama2-7b", layers=2, include_lm_head=False))
    weights = graph.weights()
    assert {"layers.0.wq", "layers.1.wq", "embed.w"} <= set(weights)
    d, ff, vocab = 4096, 11008, 32000
    per_layer = 4 * d * d + 3 * d * ff + 2 * d
    assert graph.parameter_count() == 2 * per_layer + vocab * d


def test_weight_sparsity_applies_to_linear_layers_only():
    graph = lower(
        _transformer("mixtral-8x7b", layers=1, weight_sparsity={"kind": "nm", "n": 2, "m": 4})
    )
    assert graph.op("layers.0.wq").b.sparsity == NM(2, 4)
    assert graph.op("layers.0.moe.experts.0.w_down").b.sparsity == NM(2, 4)
    assert graph.op("lm_head").b.sparsity == Dense()
    assert graph.op("layers.0.moe.router").w_router.sparsity == Dense()
    assert graph.weights()["embed.w"].sparsity == Dense()


def test_nm_group_must_divide_the_reduction_length():
    suite = _config(
        {
            "generator": "gemm_suite",
            "shapes": [{"m": 4, "n": 8, "k": 30}],
            "weight_sparsity": {"kind": "nm", "n": 2, "m": 4},
        }
    )
    with pytest.raises(ArchsimError, match=r"workload\.weight_sparsity"):
        lower(suite)


@pytest.mark.parametrize(
    "routing", [UniformRouting(), ZipfRouting(exponent=0.7), ZipfRouting(exponent=4.0)]
)
@pytest.mark.parametrize(("tokens", "experts", "top_k"), [(1, 8, 2), (13, 8, 2), (96, 64, 6)])
def test_routing_counts_are_exact_and_capped(routing, tokens, experts, top_k):
    counts = expert_token_counts(routing, tokens=tokens, experts=experts, top_k=top_k)
    assert len(counts) == experts
    assert sum(counts) == tokens * top_k
    assert all(isinstance(c, int) and 0 <= c <= tokens for c in counts)
    assert counts == expert_token_counts(routing, tokens=tokens, experts=experts, top_k=top_k)


def test_uniform_routing_is_balanced():
    counts = expert_token_counts(UniformRouting(), tokens=13, experts=8, top_k=2)
    assert max(counts) - min(counts) <= 1


def test_zipf_routing_is_skewed_toward_the_first_expert():
    counts = expert_token_counts(ZipfRouting(exponent=1.2), tokens=1000, experts=8, top_k=2)
    assert counts[0] == max(counts)
    assert list(counts) == sorted(counts, reverse=True)
    assert counts[0] > 3 * counts[-1]


def test_zipf_routing_caps_an_expert_at_the_token_count():
    # with a steep exponent nearly every token would pick expert 0 twice; distinct picks cap it
    counts = expert_token_counts(ZipfRouting(exponent=8.0), tokens=10, experts=4, top_k=2)
    assert counts[0] == 10 and sum(counts) == 20


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([4, 4, 4], "3 counts given for 4 experts"),
        ([4, 4, 4, 3], "sum to 15"),
        ([9, 7, 0, 0], r"counts\[0\]"),
    ],
)
def test_explicit_routing_is_validated(counts, match):
    with pytest.raises(ArchsimError, match=match) as raised:
        expert_token_counts(ExplicitRouting(counts=counts), tokens=8, experts=4, top_k=2)
    assert "workload.routing.counts" in str(raised.value)


def test_top_k_above_experts_is_refused():
    with pytest.raises(ArchsimError, match="top_k"):
        expert_token_counts(UniformRouting(), tokens=8, experts=2, top_k=3)


def _moe_layer(counts, tokens=4, top_k=2, d_model=64, d_ff=32):
    routing = {"distribution": "explicit", "counts": counts}
    spec = {"generator": "moe_layer", "tokens": tokens, "d_model": d_model, "d_ff": d_ff}
    return _config({**spec, "experts": len(counts), "top_k": top_k, "routing": routing})


def test_moe_layer_has_no_gemm_for_an_idle_expert():
    graph = lower(_moe_layer([3, 0, 4, 1]))
    names = {op.name for op in _gemms(graph)}
    assert not any(name.startswith("moe.experts.1.") for name in names)
    assert {g.m for g in _gemms(graph) if g.name.startswith("moe.experts.0.")} == {3}
    assert {g.m for g in _gemms(graph) if g.name.startswith("moe.experts.2.")} == {4}
    assert len(_gemms(graph)) == 3 * 3


def test_moe_layer_flops_and_edges():
    tokens, top_k, d, ff, experts = 64, 2, 128, 96, 8
    config = _config(
        {
            "generator": "moe_layer",
            "tokens": tokens,
            "d_model": d,
            "d_ff": ff,
            "experts": experts,
            "top_k": top_k,
        }
    )
    graph = lower(config)
    # every routed copy passes one SwiGLU expert: three d x ff GEMMs
    assert sum(g.flops() for g in _gemms(graph)) == 3 * 2 * tokens * top_k * d * ff
    combine = next(op for op in graph if isinstance(op, MoeCombine))
    downs = {f"moe.experts.{e}.w_down" for e in range(experts)}
    assert set(graph.predecessors(combine.name)) >= downs
    for e in range(experts):
        assert "moe.dispatch" in graph.predecessors(f"moe.experts.{e}.w_gate")


def test_deepseek_keeps_layer_zero_dense_and_adds_shared_experts():
    graph = lower(_transformer("deepseek-moe-16b", layers=2, batch=16, seq_len=64))
    names = {op.name for op in graph}
    assert "layers.0.mlp.w_gate" in names and "layers.0.moe.router" not in names
    assert graph.op("layers.0.mlp.w_gate").n == 10944
    assert graph.op("layers.1.moe.router").experts == 64
    assert graph.op("layers.1.moe.shared.w_gate").n == 2 * 1408
    assert graph.op("layers.1.moe.shared.w_gate").m == 16


def test_mixtral_expert_gemms_follow_the_routing():
    # 8 tokens pick 2 distinct experts each, so no expert can take all 16 copies
    counts = [16, 0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ArchsimError, match="counts"):
        lower(
            _transformer(
                "mixtral-8x7b",
                batch=8,
                layers=1,
                routing={"distribution": "explicit", "counts": counts},
            )
        )
    counts = [8, 8, 0, 0, 0, 0, 0, 0]
    graph = lower(
        _transformer(
            "mixtral-8x7b",
            batch=8,
            layers=1,
            routing={"distribution": "explicit", "counts": counts},
        )
    )
    expert_gemms = [g for g in _gemms(graph) if ".experts." in g.name]
    assert len(expert_gemms) == 2 * 3
    assert {g.m for g in expert_gemms} == {8}


SHIPPED = sorted(p for p in files("archsim.workloads").iterdir() if p.name.endswith(".yaml"))


def test_the_expected_workloads_ship():
    names = {p.name for p in SHIPPED}
    assert {
        "llama2_7b_decode.yaml",
        "llama2_7b_prefill.yaml",
        "llama3_8b_decode.yaml",
        "mixtral_8x7b_decode.yaml",
        "deepseek_moe_decode.yaml",
        "gemm_suite.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_workload_loads_and_lowers(path):
    loaded = load_workload(str(path))
    assert loaded.config.description
    graph = lower(loaded.config)
    assert graph.name == loaded.config.name
    assert len(graph) > 0 and graph.flops() > 0
    assert nx.is_directed_acyclic_graph(graph.nx_graph)
    count, unit = work_items(loaded.config)
    assert count > 0 and unit in {"tokens", "suite", "step", "images"}


def test_idle_experts_still_count_toward_parameters_and_capacity():
    from pathlib import Path

    from archsim.config import load_machine
    from archsim.hw import Machine
    from archsim.mappers.capacity import resident_bytes_by_device
    from archsim.mappers.greedy import GreedyMapper

    d_model, d_ff, experts = 64, 32, 4
    busy = lower(_moe_layer([3, 2, 2, 1]))
    idle = lower(_moe_layer([3, 0, 4, 1]))
    router_and_experts = d_model * experts + experts * 3 * d_model * d_ff
    assert busy.parameter_count() == idle.parameter_count() == router_and_experts
    machine_path = Path(__file__).parents[1] / "data" / "machines" / "tiny_fpga.yaml"
    machine = Machine.from_config(load_machine(machine_path).config)
    schedule = GreedyMapper().map(idle, machine)
    assert resident_bytes_by_device(schedule.entries)["fpga"] >= router_and_experts * 2
