"""CNN lowerings: a shape-tracking builder shared by the presets, NAS cells and layer lists, and
the ResNet-50 and MobileNetV2 presets (``generator: cnn``).

Activations are NCHW. Batch normalisation is folded into the convolution weights and ReLU fused
into the convolution, as inference compilers do, so neither is an op of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from archsim.config.workload import CnnSpec
from archsim.errors import ArchsimError
from archsim.ir.ops import Conv2d, Elementwise, Gemm, Op, Pool2d, gemm
from archsim.ir.tensor import DType, Tensor
from archsim.workloads.registry import register_lowering


@dataclass
class CnnBuilder:
    """Appends ops and remembers each activation's (channels, height, width) by tensor name."""

    batch: int
    dtype: DType
    ops: list[Op] = field(default_factory=list)
    shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def input(self, name: str, channels: int, height: int, width: int) -> str:
        self.shapes[name] = (channels, height, width)
        return name

    def _tensor(self, name: str) -> Tensor:
        c, h, w = self.shapes[name]
        return Tensor(name, (self.batch, c, h, w), self.dtype)

    def conv(
        self,
        name: str,
        x: str,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
    ) -> str:
        """A convolution (``padding`` default: 'same' for odd kernels); returns its output."""
        c, h, w = self.shapes[x]
        pad = kernel // 2 if padding is None else padding
        out_h = (h + 2 * pad - kernel) // stride + 1
        out_w = (w + 2 * pad - kernel) // stride + 1
        if out_h < 1 or out_w < 1 or c % groups or out_channels % groups:
            raise ArchsimError(
                f"layer '{name}': kernel {kernel}, stride {stride}, groups {groups} do not fit "
                f"its input of {c} channels, {h}x{w}"
            )
        out = f"{name}.out"
        self.shapes[out] = (out_channels, out_h, out_w)
        weight = Tensor(
            f"{name}.w", (out_channels, c // groups, kernel, kernel), self.dtype, is_weight=True
        )
        self.ops.append(
            Conv2d(
                name=name,
                x=self._tensor(x),
                w=weight,
                out=self._tensor(out),
                batch=self.batch,
                in_channels=c,
                out_channels=out_channels,
                in_h=h,
                in_w=w,
                kernel_h=kernel,
                kernel_w=kernel,
                stride=stride,
                padding=pad,
                groups=groups,
            )
        )
        return out

    def pool(
        self, name: str, x: str, function: str, kernel: int | None = None, stride: int | None = None
    ) -> str:
        """Pooling; ``kernel=None`` pools the whole map (global pooling)."""
        c, h, w = self.shapes[x]
        k = kernel or h
        s = stride or k
        pad = k // 2 if kernel is not None and k > 1 and s < k else 0
        out_h, out_w = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        if out_h < 1 or out_w < 1:
            raise ArchsimError(f"layer '{name}': pool kernel {k} does not fit {h}x{w}")
        out = f"{name}.out"
        self.shapes[out] = (c, out_h, out_w)
        self.ops.append(Pool2d(name, function, self._tensor(x), self._tensor(out), k, s))
        return out

    def add(self, name: str, inputs: Sequence[str]) -> str:
        shapes = {self.shapes[x] for x in inputs}
        if len(shapes) != 1:
            raise ArchsimError(f"layer '{name}': add needs inputs of one shape, got {shapes}")
        out = f"{name}.out"
        self.shapes[out] = self.shapes[inputs[0]]
        ins = tuple(self._tensor(x) for x in inputs)
        self.ops.append(Elementwise(name, "add", ins, self._tensor(out)))
        return out

    def concat(self, name: str, inputs: Sequence[str]) -> str:
        maps = {self.shapes[x][1:] for x in inputs}
        if len(maps) != 1:
            raise ArchsimError(f"layer '{name}': concat needs equal height and width, got {maps}")
        out = f"{name}.out"
        h, w = maps.pop()
        self.shapes[out] = (sum(self.shapes[x][0] for x in inputs), h, w)
        ins = tuple(self._tensor(x) for x in inputs)
        self.ops.append(Elementwise(name, "copy", ins, self._tensor(out)))
        return out

    def linear(self, name: str, x: str, out_features: int) -> str:
        c, h, w = self.shapes[x]
        out = f"{name}.out"
        self.shapes[out] = (out_features, 1, 1)
        op: Gemm = gemm(
            name,
            self.batch,
            out_features,
            c * h * w,
            self.dtype,
            out_dtype=self.dtype,
            a_name=x,
            b_name=f"{name}.w",
            out_name=out,
        )
        self.ops.append(op)
        return out


# ResNet-50: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1
# (50-layer column): bottleneck widths and block counts per stage; stride 2 on the 3x3 conv of
# each stage's first block (the torchvision "v1.5" placement).
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
RESNET_EXPANSION = 4

# MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR
# 2018, Table 2: (expansion t, output channels c, repeats n, first stride s) per bottleneck row.
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def resnet50(b: CnnBuilder, image_size: int) -> None:
    """ResNet-50 (Table 1 of He et al.): stem, 16 bottleneck blocks, pooling, 1000-way FC."""
    x = b.input("image", 3, image_size, image_size)
    x = b.conv("conv1", x, 64, 7, stride=2)
    x = b.pool("maxpool", x, "max", kernel=3, stride=2)
    in_channels = 64
    for stage, (width, blocks, stride) in enumerate(RESNET50_STAGES, start=2):
        for block in range(blocks):
            prefix = f"res{stage}.{block}"
            s = stride if block == 0 else 1
            out_channels = width * RESNET_EXPANSION
            y = b.conv(f"{prefix}.conv1", x, width, 1)
            y = b.conv(f"{prefix}.conv2", y, width, 3, stride=s)
            y = b.conv(f"{prefix}.conv3", y, out_channels, 1)
            shortcut = x
            if block == 0 and (s != 1 or in_channels != out_channels):
                shortcut = b.conv(f"{prefix}.downsample", x, out_channels, 1, stride=s)
            x = b.add(f"{prefix}.add", [y, shortcut])
            in_channels = out_channels
    x = b.pool("avgpool", x, "avg")
    b.linear("fc", x, 1000)


def mobilenet_v2(b: CnnBuilder, image_size: int) -> None:
    """MobileNetV2 (Table 2 of Sandler et al.): stem, 17 inverted residual blocks, head."""
    x = b.input("image", 3, image_size, image_size)
    x = b.conv("conv_stem", x, 32, 3, stride=2)
    in_channels = 32
    index = 0
    for expansion, channels, repeats, first_stride in MOBILENET_V2_BLOCKS:
        for repeat in range(repeats):
            prefix = f"block{index}"
            stride = first_stride if repeat == 0 else 1
            hidden = in_channels * expansion
            y = x
            if expansion != 1:
                y = b.conv(f"{prefix}.expand", y, hidden, 1)
            y = b.conv(f"{prefix}.dw", y, hidden, 3, stride=stride, groups=hidden)
            y = b.conv(f"{prefix}.project", y, channels, 1)
            if stride == 1 and in_channels == channels:
                y = b.add(f"{prefix}.add", [y, x])
            x = y
            in_channels = channels
            index += 1
    x = b.conv("conv_head", x, 1280, 1)
    x = b.pool("avgpool", x, "avg")
    b.linear("classifier", x, 1000)


_PRESETS = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}


def images_per_run(spec: CnnSpec) -> tuple[float, str]:
    """One run classifies ``batch`` images."""
    return float(spec.batch), "images"


@register_lowering("cnn", work_items=images_per_run)
def lower_cnn(spec: CnnSpec) -> Sequence[Op]:
    """Ops of the preset network in topological order."""
    builder = CnnBuilder(batch=spec.batch, dtype=spec.dtype)
    _PRESETS[spec.model](builder, spec.image_size)
    return builder.ops
