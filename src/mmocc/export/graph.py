"""The whole fitted detector as one torch module, from raw views to score, verdict, view scores and maps.

:class:`DetectorGraph` is what :mod:`mmocc.export.writer` traces into ONNX:
input scaling, the BatchNorm-folded encoders (and decoders where the rule
reads reconstructions), the patch feature source (the encoder's own maps or
a pretrained backbone, resized as in training), the scoring rule's head
(:mod:`mmocc.export.heads`), the threshold, and the anomaly maps upsampled
and smoothed to each image view's size (:func:`mmocc.model.patches.smooth_upsample`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from mmocc.data.inputs import ViewSpec
from mmocc.export.heads import HeadOutput, rule_head, search_bytes
from mmocc.export.metadata import input_dtype, output_order
from mmocc.model.inference import FeatureTensors, feature_tensors, inference_model
from mmocc.model.patches import PatchFeatures, smooth_upsample


def resize_matrix(length: int, size: int) -> Tensor:
    """Return the ``(size, length)`` matrix of :meth:`PatchFeatures.resize` along one axis.

    The resize is separable and linear, and its weights along an axis sum
    to 1, so resizing the indicator image of row ``p`` gives column ``p`` of
    the matrix. ``A_h @ x @ A_w.T`` then equals the antialiased resize,
    which the ONNX exporter does not express, up to float rounding.

    Parameters
    ----------
    length : int
        The input side.
    size : int
        The output side.

    Returns
    -------
    Tensor of shape (size, length)
        The weights.

    Examples
    --------
    >>> x = torch.rand(2, 3, 40, 40)
    >>> a = resize_matrix(40, 16)
    >>> bool(torch.allclose(a @ x @ a.T, PatchFeatures.resize(x, 16), atol=1e-6))
    True
    """
    rows = torch.eye(length)[:, None, :, None].expand(length, 1, length, length)
    return PatchFeatures.resize(rows.contiguous(), size)[:, 0, :, 0].T.contiguous()


class MatrixResizeFeatures(PatchFeatures):
    """:class:`PatchFeatures` as ONNX can express them.

    The resize is two MatMuls (:func:`resize_matrix`), and the tiles of a
    batch go through the backbone in one call: the batch size at tracing is
    not the one of a run.
    """

    tile_batch = None

    @staticmethod
    def resize(x: Tensor, size: int) -> Tensor:
        """Resize square images to ``size`` by the matrices of :func:`resize_matrix`."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        return resize_matrix(height, size) @ x @ resize_matrix(width, size).T


class DetectorGraph(nn.Module):
    """A fitted :class:`~mmocc.detectors.multimodal.MultimodalOCC` as one module for export.

    ``forward`` takes one raw batch per view, positionally in the model's
    view order, in the dtype the model was fitted on, and returns the tensors
    named by :func:`output_names`, flattened in that order: score (float64),
    is_anomaly (bool), view scores (float64), part scores (float64), maps
    (float32, at each image view's size).

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector; its model and scoring state are copied.

    Raises
    ------
    ValueError
        For a rule without a head, or a view named like an output.
    """

    threshold: Tensor

    def __init__(self, clf: Any) -> None:
        super().__init__()
        hp, rule = clf.params_, clf.rule_
        self.specs: list[ViewSpec] = list(clf.view_specs_)
        self.names = [spec.name for spec in clf.view_specs_]
        self.sizes = {spec.name: tuple(spec.shape[-2:]) for spec in clf.view_specs_ if spec.kind == "image"}
        self.needs = rule.needs | (rule.map_needs if rule.has_maps else frozenset())
        self.net = inference_model(clf.model_, channels_last=False, block_bytes=None).cpu()
        self.backbone = None if clf.backbone_ is None else copy.deepcopy(clf.backbone_).cpu().eval()
        self.patches = MatrixResizeFeatures(self.backbone, hp.patch_size, hp.tile_size, hp.tile_overlap)
        self.head = rule_head(rule, self.names)
        self.register_buffer("threshold", torch.tensor(float(clf.threshold_), dtype=torch.float64))
        with torch.no_grad():
            example = self.features(dict(zip(self.names, example_inputs(self.specs, 2), strict=True)))
            self.outputs = self._output_names(self.head(example))
        self.bytes_per_sample = search_bytes(self.head, example)

    def _output_names(self, head: HeadOutput) -> dict[str, Any]:
        """Name the outputs the head gave on an example batch, in the model's view order.

        Returns ``{"score": "score", "is_anomaly": "is_anomaly", "views":
        {view: "score_<view>"}, "parts": {part: "part_<part>"}, "maps":
        {view: "map_<view>"}}``; a view name that collides with an output
        name is refused.
        """
        out: dict[str, Any] = {
            "score": "score",
            "is_anomaly": "is_anomaly",
            "views": {view: f"score_{view}" for view in self.names if view in head.views},
            "parts": {part: f"part_{part}" for part in head.parts},
            "maps": {view: f"map_{view}" for view in self.names if view in head.maps},
        }
        clash = sorted(set(output_order(out)) & set(self.names))
        if clash:
            raise ValueError(f"view name(s) {clash} collide with output names of the ONNX graph; rename them")
        return out

    def features(self, batch: dict[str, Tensor]) -> FeatureTensors:
        """Compute the features the rule and its maps read, as the estimator does, in one pass."""
        return feature_tensors(self.net, batch, self.needs, self.patches.batch_maps)

    def forward(self, *raw: Tensor) -> tuple[Tensor, ...]:
        """Score one batch per view: score, verdict, view scores, part scores, maps (see the class)."""
        head = self.head(self.features(dict(zip(self.names, raw, strict=True))))
        outputs = [head.score, head.score > self.threshold]
        outputs += [head.views[view] for view in self.outputs["views"]]
        outputs += [head.parts[part] for part in self.outputs["parts"]]
        outputs += [
            smooth_upsample(head.maps[view].float(), self.sizes[view]) for view in self.outputs["maps"]
        ]
        return tuple(outputs)

    def flat_output_names(self) -> list[str]:
        """Return the graph's output names in the order of :meth:`forward`'s outputs."""
        return output_order(self.outputs)


def example_inputs(specs: list[ViewSpec], n: int) -> tuple[Tensor, ...]:
    """Return ``n`` mid-range samples of each view, in the graph's input dtypes (for tracing)."""
    return tuple(
        torch.full(
            (n, *spec.shape),
            128 if input_dtype(spec) == "uint8" else 0.5,
            dtype=getattr(torch, input_dtype(spec)),
        )
        for spec in specs
    )
