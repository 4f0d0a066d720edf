"""FLOPs and bytes of every op kind against formulas written out here from first principles."""

from __future__ import annotations

import pytest

from archsim.ir import (
    NM,
    Block,
    Collective,
    DType,
    Elementwise,
    Embedding,
    MoeCombine,
    MoeDispatch,
    MoeRouter,
    Norm,
    OpGraph,
    Softmax,
    Tensor,
    Unstructured,
    attention,
    gemm,
)

BF16 = 2  # bytes per bf16 element
BF16_T = DType.BF16


def test_dense_gemm_flops_and_bytes():
    m, n, k = 64, 96, 128
    op = gemm("g", m, n, k)
    assert op.flops() == 2 * m * n * k
    assert op.effective_flops() == op.flops()
    assert op.bytes_read() == (m * k + k * n) * BF16
    assert op.bytes_written() == m * n * BF16
    assert op.bytes() == (m * k + k * n + m * n) * BF16
    assert op.weight_bytes() == k * n * BF16
    assert op.op_per_byte() == pytest.approx(2 * m * n * k / ((m * k + k * n + m * n) * BF16))


def test_gemv_is_m_of_one():
    assert gemm("v", 1, 4096, 4096).is_gemv
    assert not gemm("g", 2, 4096, 4096).is_gemv


def test_two_four_sparse_weight_halves_values_and_adds_two_bit_indices():
    m, n, k = 32, 256, 512
    op = gemm("s", m, n, k, b_sparsity=NM(2, 4))
    # half the weights kept, each with a 2-bit position inside its group of 4
    weight_bytes = k * n * 0.5 * BF16 + k * n * 0.5 * 2 / 8
    assert op.weight_bytes() == pytest.approx(weight_bytes)
    assert op.bytes_read() == pytest.approx(m * k * BF16 + weight_bytes)
    assert op.flops() == 2 * m * n * k  # dense-equivalent work is unchanged
    assert op.effective_flops() == pytest.approx(m * n * k)


def test_unstructured_activation_and_block_weight():
    m, n, k = 16, 64, 64
    op = gemm(
        "u",
        m,
        n,
        k,
        a_sparsity=Unstructured(0.25),
        b_sparsity=Block(4, 8, 0.5),
    )
    # unstructured: kept values plus a 16-bit index per non-zero
    a_bytes = m * k * 0.25 * (BF16 + 2)
    # block: kept values plus one 32-bit index per kept 4x8 block
    b_bytes = k * n * 0.5 * BF16 + (k * n / 32) * 0.5 * 4
    assert op.bytes_read() == pytest.approx(a_bytes + b_bytes)
    assert op.effective_flops() == pytest.approx(2 * m * n * k * 0.25 * 0.5)


def test_batched_activation_gemm_reads_a_b_operand_per_batch():
    batch, m, n, k = 8, 1, 2048, 128
    op = gemm("bmm", m, n, k, batch=batch, b_is_weight=False)
    assert op.flops() == 2 * batch * m * n * k
    assert op.bytes() == batch * (m * k + k * n + m * n) * BF16
    assert op.weight_bytes() == 0


def test_int8_gemm_writes_bf16():
    m, n, k = 128, 256, 512
    op = gemm("q", m, n, k, dtype=DType.INT8)
    assert op.bytes_read() == m * k + k * n
    assert op.bytes_written() == m * n * BF16


def test_gqa_decode_attention_reads_the_kv_cache_once():
    batch, hq, hkv, kv_len, d = 4, 32, 8, 2049, 128
    op = attention(
        "a", batch=batch, heads_q=hq, heads_kv=hkv, q_len=1, kv_len=kv_len, head_dim=d,
        causal=False,
    )  # fmt: skip
    assert op.phase == "decode"
    # QK^T and PV: 2 MACs per (query head, key, dim) -> 4 operations
    assert op.flops() == 4 * batch * hq * kv_len * d
    q_and_out = 2 * batch * hq * 1 * d * BF16
    kv_cache = 2 * batch * hkv * kv_len * d * BF16  # K and V, shared by 4 query heads each
    assert op.bytes() == q_and_out + kv_cache


def test_causal_prefill_counts_the_lower_triangle():
    batch, heads, seq, d = 2, 16, 1000, 64
    op = attention(
        "p", batch=batch, heads_q=heads, heads_kv=heads, q_len=seq, kv_len=seq, head_dim=d,
        causal=True,
    )  # fmt: skip
    pairs = seq * (seq + 1) // 2
    assert op.score_pairs() == pairs
    assert op.flops() == 4 * batch * heads * d * pairs
    full = attention(
        "f", batch=batch, heads_q=heads, heads_kv=heads, q_len=seq, kv_len=seq, head_dim=d,
        causal=False,
    )  # fmt: skip
    assert full.flops() == 4 * batch * heads * d * seq * seq


def test_causal_chunk_sees_the_prefix_and_its_own_triangle():
    prefix, chunk = 300, 100
    op = attention(
        "c", batch=1, heads_q=1, heads_kv=1, q_len=chunk, kv_len=prefix + chunk, head_dim=8,
        causal=True,
    )  # fmt: skip
    assert op.score_pairs() == chunk * prefix + chunk * (chunk + 1) // 2


def test_attention_refuses_heads_not_divisible_by_kv_heads():
    with pytest.raises(ValueError, match="multiple"):
        attention(
            "bad", batch=1, heads_q=12, heads_kv=5, q_len=1, kv_len=8, head_dim=8, causal=False
        )


@pytest.mark.parametrize(
    ("function", "ops_per_element", "inputs"),
    [("add", 1, 2), ("silu_mul", 6, 2), ("rope", 3, 1), ("copy", 0, 1), ("gelu", 8, 1)],
)
def test_elementwise(function, ops_per_element, inputs):
    rows, cols = 24, 1000
    ins = tuple(Tensor(f"x{i}", (rows, cols), BF16_T) for i in range(inputs))
    op = Elementwise("e", function, ins, Tensor("y", (rows, cols), BF16_T))
    assert op.flops() == ops_per_element * rows * cols
    assert op.bytes() == (inputs + 1) * rows * cols * BF16


def test_elementwise_refuses_unknown_function():
    x = Tensor("x", (4,), BF16_T)
    with pytest.raises(ValueError, match="unknown function"):
        Elementwise("e", "tanh_pow", (x,), Tensor("y", (4,), BF16_T))


@pytest.mark.parametrize(("function", "ops_per_element"), [("rmsnorm", 4), ("layernorm", 7)])
def test_norm(function, ops_per_element):
    rows, d = 10, 512
    op = Norm(
        "n",
        function,
        Tensor("x", (rows, d), BF16_T),
        Tensor("g", (d,), BF16_T, is_weight=True),
        Tensor("y", (rows, d), BF16_T),
    )
    assert op.flops() == ops_per_element * rows * d
    assert op.bytes() == (2 * rows * d + d) * BF16
    assert op.weight_bytes() == d * BF16


def test_softmax():
    op = Softmax("s", Tensor("x", (8, 300), DType.FP32), Tensor("y", (8, 300), DType.FP32))
    assert op.flops() == 5 * 8 * 300
    assert op.bytes() == 2 * 8 * 300 * 4


def _router(tokens=64, d=1024, experts=8, top_k=2, counts=None):
    return MoeRouter(
        "r",
        x=Tensor("x", (tokens, d), BF16_T),
        w_router=Tensor("wr", (d, experts), BF16_T, is_weight=True),
        out=Tensor("routing", (tokens, top_k), DType.FP32),
        tokens=tokens,
        experts=experts,
        top_k=top_k,
        expert_tokens=counts or (tokens * top_k // experts,) * experts,
    )


def test_moe_router_flops_and_bytes():
    tokens, d, experts, top_k = 64, 1024, 8, 2
    op = _router(tokens, d, experts, top_k)
    # the logits GEMM, then softmax (5) and top-k compare (1) per logit
    assert op.flops() == 2 * tokens * d * experts + 6 * tokens * experts
    assert op.bytes() == (tokens * d + d * experts) * BF16 + tokens * top_k * 4


def test_moe_router_checks_counts():
    with pytest.raises(ValueError, match="tokens\\*top_k"):
        _router(counts=(16, 16, 16, 16, 16, 16, 16, 15))
    with pytest.raises(ValueError, match="counts for 8 experts"):
        _router(counts=(64, 64))


def test_moe_dispatch_reads_one_row_per_routed_copy():
    tokens, top_k, d = 32, 2, 256
    routing = Tensor("routing", (tokens, top_k), DType.FP32)
    op = MoeDispatch(
        "d", Tensor("x", (tokens, d), BF16_T), routing, Tensor("xd", (tokens * top_k, d), BF16_T)
    )
    assert op.flops() == 0
    assert op.bytes_read() == tokens * top_k * d * BF16 + tokens * top_k * 4
    assert op.bytes_written() == tokens * top_k * d * BF16


def test_moe_combine_with_and_without_parts():
    tokens, top_k, d = 32, 2, 256
    routing = Tensor("routing", (tokens, top_k), DType.FP32)
    whole = Tensor("eo", (tokens * top_k, d), BF16_T)
    out = Tensor("y", (tokens, d), BF16_T)
    plain = MoeCombine("c", whole, routing, out, top_k=top_k)
    # a multiply and an add per routed element
    assert plain.flops() == 2 * tokens * top_k * d
    assert plain.bytes() == (tokens * top_k * d + tokens * d) * BF16 + tokens * top_k * 4
    parts = (Tensor("e0", (40, d), BF16_T), Tensor("e1", (24, d), BF16_T))
    split = MoeCombine("c", whole, routing, out, top_k=top_k, parts=parts)
    assert split.bytes() == plain.bytes()
    assert {t.name for t in split.inputs()} == {"e0", "e1", "routing"}
    with pytest.raises(ValueError, match="parts"):
        MoeCombine("c", whole, routing, out, top_k=top_k, parts=parts[:1])


@pytest.mark.parametrize(
    ("function", "reduce_ops", "link_bytes"),
    [
        ("allreduce", lambda n, p: n * (p - 1) / p, lambda s, p: 2 * s * (p - 1) / p),
        ("allgather", lambda n, p: 0, lambda s, p: s * (p - 1)),
        ("reducescatter", lambda n, p: n * (p - 1) / p, lambda s, p: s * (p - 1) / p),
    ],
)
def test_collectives_follow_the_ring_algorithm(function, reduce_ops, link_bytes):
    numel, p = 1 << 20, 4
    op = Collective("c", function, Tensor("b", (numel,), BF16_T), Tensor("o", (numel,), BF16_T), p)
    assert op.flops() == pytest.approx(reduce_ops(numel, p))
    assert op.link_bytes() == pytest.approx(link_bytes(numel * BF16, p))


def test_embedding_moves_gathered_rows_but_counts_the_whole_table():
    vocab, d, tokens = 32000, 512, 24
    op = Embedding(
        "embed",
        table=Tensor("embed.w", (vocab, d), BF16_T, is_weight=True),
        out=Tensor("embed.out", (tokens, d), BF16_T),
    )
    assert op.flops() == 0
    assert op.rows == tokens
    assert op.bytes_read() == tokens * d * BF16
    assert op.bytes_written() == tokens * d * BF16
    assert OpGraph("g", [op]).parameter_count() == vocab * d


def test_embedding_refuses_mismatched_width():
    with pytest.raises(ValueError, match="embedding"):
        Embedding(
            "e",
            table=Tensor("t", (100, 64), BF16_T, is_weight=True),
            out=Tensor("o", (4, 32), BF16_T),
        )
