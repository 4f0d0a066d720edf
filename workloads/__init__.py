"""Workload lowerings (generators -> OpGraph) and the shipped workload files.

``lower(config)`` turns a validated workload file into an ``OpGraph``; ``work_items(config)``
says what one run of it delivers (tokens, or one GEMM suite). Each generator is one module that
registers itself with ``register_lowering``.
"""

from archsim.workloads import cnn, gemm_suite, layer_list, moe_layer, nas, training, transformer
from archsim.workloads.registry import lower, register_lowering, registered_generators, work_items

__all__ = [
    "cnn",
    "gemm_suite",
    "layer_list",
    "lower",
    "moe_layer",
    "nas",
    "register_lowering",
    "registered_generators",
    "training",
    "transformer",
    "work_items",
]
