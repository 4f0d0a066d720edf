"""Architectures of published models, with the numbers of their model cards and papers.

Every preset is a decoder-only transformer with RMSNorm, rotary position embeddings and SwiGLU
feed-forward layers; MoE presets replace the feed-forward layer with routed (and shared) SwiGLU
experts.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.errors import ArchsimError


@dataclass(frozen=True)
class ModelArchitecture:
    """Shape of a decoder-only transformer.

    Parameters
    ----------
    name:
        Preset name, as workload files spell it.
    d_model:
        Hidden size.
    layers:
        Transformer blocks.
    heads:
        Query heads.
    kv_heads:
        Key/value heads (fewer than ``heads`` is grouped-query attention).
    head_dim:
        Size of one head.
    d_ff:
        Intermediate size of a dense feed-forward layer.
    vocab:
        Vocabulary size (rows of the embedding table, columns of the LM head).
    norm:
        Normalisation layer.
    activation:
        Feed-forward activation; ``swiglu`` is ``down(silu(gate(x)) * up(x))``.
    experts:
        Routed experts per MoE layer; 0 for a dense model.
    top_k:
        Routed experts each token picks.
    expert_d_ff:
        Intermediate size of one routed (and one shared) expert.
    shared_experts:
        Experts every token passes through besides the routed ones (DeepSeekMoE).
    first_dense_layers:
        Leading blocks that keep a dense feed-forward layer in an MoE model.
    tie_embeddings:
        True when the LM head reuses the embedding table.
    """

    name: str
    d_model: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int
    norm: str = "rmsnorm"
    activation: str = "swiglu"
    experts: int = 0
    top_k: int = 0
    expert_d_ff: int = 0
    shared_experts: int = 0
    first_dense_layers: int = 0
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.heads % self.kv_heads:
            raise ValueError(f"{self.name}: {self.heads} heads not a multiple of {self.kv_heads}")
        if self.experts and not 0 < self.top_k <= self.experts:
            raise ValueError(f"{self.name}: top_k {self.top_k} not in 1..{self.experts}")

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    def is_moe_layer(self, index: int) -> bool:
        """True if block ``index`` (from 0) has an MoE feed-forward layer."""
        return self.is_moe and index >= self.first_dense_layers


PRESETS: dict[str, ModelArchitecture] = {
    # Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models" (2023), Table 1 and
    # the meta-llama/Llama-2-7b-hf config.json: 6.74B parameters.
    "llama2-7b": ModelArchitecture(
        name="llama2-7b",
        d_model=4096,
        layers=32,
        heads=32,
        kv_heads=32,
        head_dim=128,
        d_ff=11008,
        vocab=32000,
    ),
    # Meta, "The Llama 3 Herd of Models" (2024), Table 3, and the meta-llama/Meta-Llama-3-8B
    # config.json: GQA with 8 KV heads, 128K vocabulary, 8.03B parameters.
    "llama3-8b": ModelArchitecture(
        name="llama3-8b",
        d_model=4096,
        layers=32,
        heads=32,
        kv_heads=8,
        head_dim=128,
        d_ff=14336,
        vocab=128256,
    ),
    # Jiang et al., "Mixtral of Experts" (2024), Table 1, and the mistralai/Mixtral-8x7B-v0.1
    # config.json: every block has 8 SwiGLU experts of 14336, top-2; 46.7B parameters.
    "mixtral-8x7b": ModelArchitecture(
        name="mixtral-8x7b",
        d_model=4096,
        layers=32,
        heads=32,
        kv_heads=8,
        head_dim=128,
        d_ff=14336,
        vocab=32000,
        experts=8,
        top_k=2,
        expert_d_ff=14336,
    ),
    # Dai et al., "DeepSeekMoE" (2024), Section 5 and Appendix A, and the
    # deepseek-ai/deepseek-moe-16b-base config.json: 64 routed experts (top-6) plus 2 shared,
    # each 1408 wide; block 0 keeps a dense FFN of 10944; 16.4B parameters.
    "deepseek-moe-16b": ModelArchitecture(
        name="deepseek-moe-16b",
        d_model=2048,
        layers=28,
        heads=16,
        kv_heads=16,
        head_dim=128,
        d_ff=10944,
        vocab=102400,
        experts=64,
        top_k=6,
        expert_d_ff=1408,
        shared_experts=2,
        first_dense_layers=1,
    ),
}


def get_model(name: str, field: str = "workload.model") -> ModelArchitecture:
    """The preset called ``name``.

    Raises
    ------
    ArchsimError
        Naming ``field`` and the known presets when ``name`` is not one of them.
    """
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ArchsimError(f"{field}: unknown model '{name}' (known: {known})") from None
