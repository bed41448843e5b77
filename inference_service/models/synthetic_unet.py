"""synthetic-unet: SyncTalk_2D's UNet shape and size (MobileNetV2-style encoder, five
down-samplings, about 11.6 M parameters) with fixed random weights, so benchmarks and
batching see realistic compute. Its output is not a face.
"""

from __future__ import annotations

import numpy as np

from inference_service.models.graph import Graph
from lipstream import contract

LOOKAHEAD_FRAMES = contract.BUILTIN_LOOKAHEAD_FRAMES["synthetic-unet"]

UNET_SEED = 20240611
UNET_CHANNELS = (32, 64, 128, 256, 512)
UNET_EXPAND = 2
RESIDUAL_VARIANCE_GAIN = 0.25  # residual branches start small so the sums stay bounded
BIAS_STD = 0.05
AUDIO_DOWN_GROUPS = 2  # the audio branch's widest conv, grouped to keep the total at 11-12 M


class Layers:
    """MobileNetV2-style building blocks with seeded He-scaled weights and folded batch norm."""

    def __init__(self, graph: Graph, rng: np.random.Generator) -> None:
        self.g = graph
        self.rng = rng

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        pad: int | None = None,
        groups: int = 1,
        gain: float = 2.0,
    ) -> str:
        """Conv with bias (a folded batch norm); variance gain 2 before a ReLU (He), 1 when linear."""
        fan_in = cin // groups * kernel * kernel
        weight = self.rng.standard_normal((cout, cin // groups, kernel, kernel)) * np.sqrt(gain / fan_in)
        bias = self.rng.normal(0.0, BIAS_STD, cout)
        pad = kernel // 2 if pad is None else pad
        return self.g.op(
            "Conv",
            [x, self.g.const(weight), self.g.const(bias)],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=groups,
        )

    def relu6(self, x: str) -> str:
        return self.g.op("Clip", [x, self.g.const(0.0), self.g.const(6.0)])

    def inverted_residual(self, x: str, cin: int, cout: int, stride: int = 1, residual: bool = False) -> str:
        hidden = cin * UNET_EXPAND
        h = self.relu6(self.conv(x, cin, hidden))
        h = self.relu6(self.conv(h, hidden, hidden, kernel=3, stride=stride, groups=hidden))
        if not residual:
            return self.conv(h, hidden, cout, gain=1.0)
        return self.g.op("Add", [x, self.conv(h, hidden, cout, gain=RESIDUAL_VARIANCE_GAIN)])

    def double_conv(self, x: str, cin: int, cout: int, stride: int) -> str:
        x = self.inverted_residual(x, cin, cout, stride=stride)
        return self.inverted_residual(x, cout, cout, residual=True)

    def up(self, x: str, skip: str, cin: int, cout: int) -> str:
        """Bilinear 2x upsampling, concat with the encoder's skip, then a depthwise double conv."""
        scales = self.g.const([1.0, 1.0, 2.0, 2.0])
        upsampled = self.g.op("Resize", [x, "", scales], mode="linear", coordinate_transformation_mode="align_corners")
        return self.double_conv(self.g.op("Concat", [upsampled, skip], axis=1), cin, cout, stride=1)

    def audio_branch(self, audio: str) -> str:
        """[B,32,16,16] -> [B,512,10,10], the bottleneck's size (padding 3, stride 2)."""
        c = UNET_CHANNELS
        x = self.inverted_residual(audio, contract.AUDIO_WINDOW_SHAPE[0], c[1])
        x = self.inverted_residual(x, c[1], c[2])
        x = self.relu6(self.conv(x, c[2], c[3], kernel=3))
        x = self.inverted_residual(x, c[3], c[3], residual=True)
        x = self.relu6(self.conv(x, c[3], c[4], kernel=3, stride=2, pad=3, groups=AUDIO_DOWN_GROUPS))
        x = self.inverted_residual(x, c[4], c[4], residual=True)
        return self.inverted_residual(x, c[4], c[4], residual=True)


def synthetic_unet() -> Graph:
    g = Graph()
    layers = Layers(g, np.random.default_rng(UNET_SEED))
    c = UNET_CHANNELS
    x1 = layers.inverted_residual(contract.IMAGE_INPUT, contract.IMAGE_CHANNELS, c[0])  # 320
    x2 = layers.double_conv(x1, c[0], c[0], stride=2)  # 160
    x3 = layers.double_conv(x2, c[0], c[1], stride=2)  # 80
    x4 = layers.double_conv(x3, c[1], c[2], stride=2)  # 40
    x5 = layers.double_conv(x4, c[2], c[3], stride=2)  # 20
    x6 = layers.double_conv(x5, c[3], c[4], stride=2)  # 10

    fused = g.op("Concat", [x6, layers.audio_branch(contract.AUDIO_INPUT)], axis=1)
    fused = layers.double_conv(fused, 2 * c[4], c[4], stride=1)
    fused = layers.double_conv(fused, c[4], c[3], stride=1)

    x = layers.up(fused, x5, 2 * c[3], c[3] // 2)
    x = layers.up(x, x4, c[3], c[2] // 2)
    x = layers.up(x, x3, c[2], c[1] // 2)
    x = layers.up(x, x2, c[1], c[0])
    x = layers.up(x, x1, 2 * c[0], c[0] // 2)
    g.op("Sigmoid", [layers.conv(x, c[0] // 2, 3, gain=1.0)], output=contract.OUTPUT)
    return g
