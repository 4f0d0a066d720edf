"""CNN lowerings: a shape-tracking builder shared by the presets, NAS cells and layer lists, and
the presets of ``generator: cnn``: ResNet-18/34/50/101, MobileNetV2, GoogLeNet, SqueezeNet and
DenseNet-121, each with the layer shapes of its original paper.

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
RESNET50_BLOCKS = (3, 4, 6, 3)
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
    resnet_bottleneck(b, image_size, RESNET50_BLOCKS)


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


# ResNet-18/34/101: He et al. 2016, Table 1 (18-, 34- and 101-layer columns); 18 and 34 use
# two-layer 3x3 "basic" blocks, 101 the bottleneck blocks of ResNet-50.
RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET34_BLOCKS = (3, 4, 6, 3)
RESNET101_BLOCKS = (3, 4, 23, 3)
RESNET_WIDTHS = (64, 128, 256, 512)


def _resnet_stem(b: CnnBuilder, image_size: int) -> str:
    x = b.input("image", 3, image_size, image_size)
    x = b.conv("conv1", x, 64, 7, stride=2)
    return b.pool("maxpool", x, "max", kernel=3, stride=2)


def _resnet_head(b: CnnBuilder, x: str) -> None:
    x = b.pool("avgpool", x, "avg")
    b.linear("fc", x, 1000)


def resnet_basic(b: CnnBuilder, image_size: int, blocks: Sequence[int]) -> None:
    """ResNet-18/34 (Table 1 of He et al.): two 3x3 convolutions per block, a 1x1 projection
    shortcut where the shape changes (option B of their Section 3.3)."""
    x = _resnet_stem(b, image_size)
    in_channels = 64
    for stage, (width, count) in enumerate(zip(RESNET_WIDTHS, blocks, strict=True), start=2):
        for block in range(count):
            prefix = f"res{stage}.{block}"
            s = 2 if block == 0 and stage > 2 else 1
            y = b.conv(f"{prefix}.conv1", x, width, 3, stride=s)
            y = b.conv(f"{prefix}.conv2", y, width, 3)
            shortcut = x
            if s != 1 or in_channels != width:
                shortcut = b.conv(f"{prefix}.downsample", x, width, 1, stride=s)
            x = b.add(f"{prefix}.add", [y, shortcut])
            in_channels = width
    _resnet_head(b, x)


def resnet_bottleneck(b: CnnBuilder, image_size: int, blocks: Sequence[int]) -> None:
    """ResNet-50/101 (Table 1 of He et al.): 1x1, 3x3, 1x1 bottleneck blocks."""
    x = _resnet_stem(b, image_size)
    in_channels = 64
    for stage, (width, count) in enumerate(zip(RESNET_WIDTHS, blocks, strict=True), start=2):
        stride = 1 if stage == 2 else 2
        for block in range(count):
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
    _resnet_head(b, x)


# GoogLeNet: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, Table 1: per inception
# module the 1x1, 3x3-reduce, 3x3, 5x5-reduce, 5x5 and pool-projection widths; "pool" marks the
# 3x3 stride-2 max pooling between stages. The LRN layers and the auxiliary classifiers (training
# only) are left out.
GOOGLENET_MODULES = (
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    ("pool", ()),
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    ("pool", ()),
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
)


def googlenet(b: CnnBuilder, image_size: int) -> None:
    """GoogLeNet (Table 1 of Szegedy et al.): stem, nine inception modules, pooling, FC."""
    x = b.input("image", 3, image_size, image_size)
    x = b.conv("conv1", x, 64, 7, stride=2)
    x = b.pool("pool1", x, "max", kernel=3, stride=2)
    x = b.conv("conv2.reduce", x, 64, 1)
    x = b.conv("conv2", x, 192, 3)
    x = b.pool("pool2", x, "max", kernel=3, stride=2)
    pools = 2
    for name, widths in GOOGLENET_MODULES:
        if name == "pool":
            pools += 1
            x = b.pool(f"pool{pools}", x, "max", kernel=3, stride=2)
            continue
        c1, r3, c3, r5, c5, proj = widths
        prefix = f"inception{name}"
        a = b.conv(f"{prefix}.1x1", x, c1, 1)
        m = b.conv(f"{prefix}.3x3_reduce", x, r3, 1)
        m = b.conv(f"{prefix}.3x3", m, c3, 3)
        n = b.conv(f"{prefix}.5x5_reduce", x, r5, 1)
        n = b.conv(f"{prefix}.5x5", n, c5, 5)
        p = b.pool(f"{prefix}.pool", x, "max", kernel=3, stride=1)
        p = b.conv(f"{prefix}.pool_proj", p, proj, 1)
        x = b.concat(f"{prefix}.concat", [a, m, n, p])
    x = b.pool("avgpool", x, "avg")
    b.linear("fc", x, 1000)


# SqueezeNet: Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
# <0.5MB model size", arXiv:1602.07360, Table 1 (v1.0): per fire module the squeeze 1x1 and the
# expand 1x1 and 3x3 widths; "pool" is a 3x3 stride-2 max pooling. Padding is "same" throughout
# (the released Caffe model's unpadded maps are a row or two smaller).
SQUEEZENET_FIRES = (
    ("fire2", (16, 64, 64)),
    ("fire3", (16, 64, 64)),
    ("fire4", (32, 128, 128)),
    ("pool", ()),
    ("fire5", (32, 128, 128)),
    ("fire6", (48, 192, 192)),
    ("fire7", (48, 192, 192)),
    ("fire8", (64, 256, 256)),
    ("pool", ()),
    ("fire9", (64, 256, 256)),
)


def squeezenet(b: CnnBuilder, image_size: int) -> None:
    """SqueezeNet v1.0 (Table 1 of Iandola et al.): conv1, eight fire modules, conv10, pooling."""
    x = b.input("image", 3, image_size, image_size)
    x = b.conv("conv1", x, 96, 7, stride=2)
    x = b.pool("maxpool1", x, "max", kernel=3, stride=2)
    pools = 1
    for name, widths in SQUEEZENET_FIRES:
        if name == "pool":
            pools += 1
            x = b.pool(f"maxpool{pools}", x, "max", kernel=3, stride=2)
            continue
        squeeze, e1, e3 = widths
        s = b.conv(f"{name}.squeeze", x, squeeze, 1)
        left = b.conv(f"{name}.expand1x1", s, e1, 1)
        right = b.conv(f"{name}.expand3x3", s, e3, 3)
        x = b.concat(f"{name}.concat", [left, right])
    x = b.conv("conv10", x, 1000, 1)
    b.pool("avgpool", x, "avg")


# DenseNet-121: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017, Table 1:
# growth rate k = 32, dense blocks of 6, 12, 24 and 16 layers, each layer a 1x1 bottleneck of 4k
# channels and a 3x3 convolution of k whose output is concatenated to the block's features;
# transitions halve the channels (compression 0.5) by a 1x1 convolution and 2x2 average pooling.
DENSENET121_BLOCKS = (6, 12, 24, 16)
DENSENET_GROWTH = 32
DENSENET_BOTTLENECK = 4
DENSENET_COMPRESSION = 0.5


def densenet121(b: CnnBuilder, image_size: int) -> None:
    """DenseNet-121 (Table 1 of Huang et al.); batch norms folded into the following conv."""
    x = b.input("image", 3, image_size, image_size)
    x = b.conv("conv0", x, 2 * DENSENET_GROWTH, 7, stride=2)
    x = b.pool("pool0", x, "max", kernel=3, stride=2)
    channels = 2 * DENSENET_GROWTH
    for index, layers in enumerate(DENSENET121_BLOCKS, start=1):
        for layer in range(layers):
            prefix = f"block{index}.layer{layer}"
            y = b.conv(f"{prefix}.conv1", x, DENSENET_BOTTLENECK * DENSENET_GROWTH, 1)
            y = b.conv(f"{prefix}.conv2", y, DENSENET_GROWTH, 3)
            x = b.concat(f"{prefix}.concat", [x, y])
            channels += DENSENET_GROWTH
        if index < len(DENSENET121_BLOCKS):
            channels = int(channels * DENSENET_COMPRESSION)
            x = b.conv(f"transition{index}.conv", x, channels, 1)
            x = b.pool(f"transition{index}.pool", x, "avg", kernel=2, stride=2)
    x = b.pool("avgpool", x, "avg")
    b.linear("classifier", x, 1000)


_PRESETS = {
    "resnet18": lambda b, size: resnet_basic(b, size, RESNET18_BLOCKS),
    "resnet34": lambda b, size: resnet_basic(b, size, RESNET34_BLOCKS),
    "resnet50": resnet50,
    "resnet101": lambda b, size: resnet_bottleneck(b, size, RESNET101_BLOCKS),
    "mobilenet_v2": mobilenet_v2,
    "googlenet": googlenet,
    "squeezenet": squeezenet,
    "densenet121": densenet121,
}


def images_per_run(spec: CnnSpec) -> tuple[float, str]:
    """One run classifies ``batch`` images."""
    return float(spec.batch), "images"


@register_lowering("cnn", work_items=images_per_run)
def lower_cnn(spec: CnnSpec) -> Sequence[Op]:
    """Ops of the preset network in topological order."""
    builder = CnnBuilder(batch=spec.batch, dtype=spec.dtype)
    _PRESETS[spec.model](builder, spec.image_size)
    return builder.ops
