"""NAS-style cell graphs (``generator: nas_cell``): stacked cells with many parallel branches.

Each cell follows the NASNet-A normal cell (Zoph et al., "Learning Transferable Architectures for
Scalable Image Recognition", CVPR 2018, Figure 4): two inputs (the previous two cells' outputs),
five blocks that each add two branch results, and a concatenation of the unused block outputs.
A separable convolution is a depthwise 3x3 or 5x5 convolution followed by a 1x1 convolution,
applied twice as in NASNet. The concatenation is projected back to ``channels`` by a 1x1
convolution so that cells stack with constant width.
"""

from __future__ import annotations

from collections.abc import Sequence

from archsim.config.workload import NasCellSpec
from archsim.ir.ops import Op
from archsim.workloads.cnn import CnnBuilder, images_per_run
from archsim.workloads.registry import register_lowering

# NASNet-A normal cell, Figure 4 of Zoph et al.: each block adds two (input, operation) branches;
# inputs 0 and 1 are h_{i-1} and h_i.
NORMAL_CELL = (
    ((1, "sep3"), (1, "identity")),
    ((0, "sep3"), (1, "sep5")),
    ((1, "avg3"), (0, "identity")),
    ((0, "avg3"), (0, "avg3")),
    ((0, "sep5"), (0, "sep3")),
)


def _branch(b: CnnBuilder, name: str, x: str, operation: str, channels: int) -> str:
    if operation == "identity":
        return x
    if operation == "avg3":
        return b.pool(name, x, "avg", kernel=3, stride=1)
    kernel = 3 if operation == "sep3" else 5
    for repeat in range(2):
        x = b.conv(f"{name}.dw{repeat}", x, channels, kernel, groups=channels)
        x = b.conv(f"{name}.pw{repeat}", x, channels, 1)
    return x


def nas_cells(b: CnnBuilder, cells: int, channels: int, image_size: int) -> None:
    """A stem convolution and ``cells`` NASNet-A-like normal cells."""
    image = b.input("image", 3, image_size, image_size)
    prev = cur = b.conv("stem", image, channels, 3)
    for cell in range(cells):
        inputs = (prev, cur)
        blocks: list[str] = []
        used: set[str] = set()
        for index, branches in enumerate(NORMAL_CELL):
            outs = []
            for side, (which, operation) in enumerate(branches):
                name = f"cell{cell}.b{index}.{side}.{operation}"
                outs.append(_branch(b, name, inputs[which], operation, channels))
                used.add(inputs[which])
            blocks.append(b.add(f"cell{cell}.b{index}.add", outs))
        concat = b.concat(f"cell{cell}.concat", blocks)
        prev, cur = cur, b.conv(f"cell{cell}.project", concat, channels, 1)


@register_lowering("nas_cell", work_items=images_per_run)
def lower_nas_cell(spec: NasCellSpec) -> Sequence[Op]:
    builder = CnnBuilder(batch=spec.batch, dtype=spec.dtype)
    nas_cells(builder, spec.cells, spec.channels, spec.image_size)
    return builder.ops
