"""Scoring rules as torch modules that export to ONNX: memory banks as buffers, searches as MatMul + TopK.

Each head computes, from a batch's features, what its rule's
:meth:`~mmocc.scoring.base.ScoringRule.score_details` and
:meth:`~mmocc.scoring.base.ScoringRule.anomaly_maps` compute, with only
operations that :func:`torch.onnx.export` traces into a graph with a dynamic
batch axis. A search ranks the bank by ``|b|^2 - 2 q.b`` (a MatMul), keeps
the ``k +`` :data:`~mmocc.search.index.MARGIN` best candidates (TopK),
re-measures their exact distances (Gather, Sub, ReduceSum, Sqrt) and keeps
the ``k`` nearest, as :class:`~mmocc.search.index.NeighborIndex` does for an
exact search. Scores are float64 from the distances on, as in the rules.

Features are passed as ``{kind: {view: Tensor}}`` with the kinds of
:data:`mmocc.scoring.FEATURE_KINDS`; a head returns a :class:`HeadOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from mmocc.model.inference import FeatureTensors
from mmocc.scoring import (
    CenterScore,
    CombinedScore,
    EnsembleScore,
    KNNScore,
    MahalanobisScore,
    NormScore,
    PatchScore,
    ReconScore,
    ScoringRule,
)
from mmocc.search.index import MARGIN

RUN_BYTES = 256 * 2**20
"""Bytes of search intermediates one run of a graph aims to hold: a patch search takes a sample's
positions in blocks that fit, and :func:`mmocc.export.writer.export_onnx` sets the samples per run."""


@dataclass
class HeadOutput:
    """What a head computes for a batch (each a float64 tensor with the batch as first axis).

    Attributes
    ----------
    score : Tensor of shape (n,)
        The anomaly scores.
    views : dict of str to Tensor of shape (n,)
        The standardized score of each view (rules with per-view scores).
    parts : dict of str to Tensor of shape (n,)
        The standardized part scores (``combined``).
    maps : dict of str to Tensor of shape (n, h, w)
        The standardized position scores of each image view, before
        upsampling (rules with maps).
    """

    score: Tensor
    views: dict[str, Tensor] = field(default_factory=dict)
    parts: dict[str, Tensor] = field(default_factory=dict)
    maps: dict[str, Tensor] = field(default_factory=dict)


def _double(values: np.ndarray | float) -> Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


class BankSearch(nn.Module):
    """Exact k-nearest search of one memory bank: distances of each query to its ``k`` nearest rows.

    Parameters
    ----------
    bank : numpy.ndarray or Tensor of shape (M, d)
        The bank rows (float32), an initializer of the graph.
    """

    bank: Tensor
    norms: Tensor

    def __init__(self, bank: np.ndarray | Tensor) -> None:
        super().__init__()
        rows = torch.as_tensor(np.ascontiguousarray(np.asarray(bank, dtype=np.float32)))
        self.register_buffer("bank", rows)
        self.register_buffer("norms", rows.pow(2).sum(dim=1))

    def __len__(self) -> int:
        return int(self.bank.shape[0])

    def query_bytes(self, k: int) -> int:
        """Bytes one query holds during :meth:`forward`: its rank row and its gathered candidates."""
        return 4 * (len(self) + (k + MARGIN) * int(self.bank.shape[1]))

    def forward(self, queries: Tensor, k: int) -> Tensor:
        """Return the float32 distances ``(m, k)`` of each query to its ``k`` nearest rows, ascending."""
        rank = self.norms[None, :] - (2.0 * queries) @ self.bank.T  # doubling the queries: no pass over rank
        candidates = rank.topk(min(k + MARGIN, len(self)), dim=1, largest=False).indices
        rows = self.bank[candidates]
        exact = (queries[:, None, :] - rows).pow(2).sum(dim=2).sqrt()
        return exact.topk(k, dim=1, largest=False).values


def _search(searches: nn.ModuleList, index: int) -> BankSearch:
    """Return one bank's search of a head's list (typed)."""
    search = searches[index]
    assert isinstance(search, BankSearch)
    return search


class KNNHead(nn.Module):
    """The ``knn`` rule (:class:`~mmocc.scoring.knn.KNNScore`) for every view present."""

    mean: Tensor
    std: Tensor

    def __init__(self, rule: KNNScore, views: list[str]) -> None:
        super().__init__()
        self.plan = rule.column_plan(views)
        keys = list(dict.fromkeys(key for _, key, _, _ in self.plan))  # a pooled bank serves two columns
        self.searches = nn.ModuleList(BankSearch(rule.banks[key]) for key in keys)
        self.search_of = [keys.index(key) for _, key, _, _ in self.plan]
        self.k = [max(1, min(rule.n_neighbors, len(rule.banks[key]) - 1)) for _, key, _, _ in self.plan]
        self.per_view = rule.supports_views
        self.register_buffer("mean", _double(rule.mean[[index for index, *_ in self.plan]]))
        self.register_buffer("std", _double(rule.std[[index for index, *_ in self.plan]]))

    def bytes_per_sample(self, feats: FeatureTensors) -> int:
        """Bytes of search intermediates per sample: one query of the largest column (columns run in turn)."""
        return sum(
            _search(self.searches, i).query_bytes(k) for i, k in zip(self.search_of, self.k, strict=True)
        )

    def forward(self, feats: FeatureTensors) -> HeadOutput:
        """Standardized mean k-NN distance of each column; their mean, and each view's mean."""
        columns = []
        for (_, key, _, sources), i, k in zip(self.plan, self.search_of, self.k, strict=True):
            per_view = feats["latent" if key.startswith("latent:") else "input"]
            queries = torch.cat([per_view[source] for source in sources], dim=1)
            columns.append(_search(self.searches, i)(queries, k).double().mean(dim=1))
        z = (torch.stack(columns, dim=1) - self.mean) / self.std
        views: dict[str, Tensor] = {}
        if self.per_view:
            for view in dict.fromkeys(view for _, _, view, _ in self.plan if view is not None):
                picked = [i for i, (_, _, owner, _) in enumerate(self.plan) if owner == view]
                views[view] = z[:, picked].mean(dim=1)
        return HeadOutput(z.mean(dim=1), views)


class PatchHead(nn.Module):
    """The ``patch`` rule (:class:`~mmocc.scoring.patch.PatchScore`): position maps, top-k view scores."""

    def __init__(self, rule: PatchScore, views: list[str]) -> None:
        super().__init__()
        self.views = [view for view in views if view in rule.mean]
        groups = sorted({rule.view_groups[view] for view in self.views})
        self.searches = nn.ModuleList(BankSearch(rule.banks[group]) for group in groups)
        self.search_of = {view: groups.index(rule.view_groups[view]) for view in self.views}
        self.stats = {view: (rule.mean[view], rule.std[view]) for view in self.views}
        self.top_k = rule.top_k
        self.view_combine = rule.view_combine

    def _block(self, view: str, positions: int) -> int:
        """Return how many positions of one sample a search takes at once: what :data:`RUN_BYTES` holds."""
        search = _search(self.searches, self.search_of[view])
        return int(min(positions, max(1, RUN_BYTES // search.query_bytes(1))))

    def bytes_per_sample(self, feats: FeatureTensors) -> int:
        """Bytes of search intermediates per sample: its largest block of positions (views run in turn)."""
        return max(
            self._block(view, int(np.prod(feats["patch"][view].shape[2:])))
            * _search(self.searches, self.search_of[view]).query_bytes(1)
            for view in self.views
        )

    def forward(self, feats: FeatureTensors) -> HeadOutput:
        """Nearest-patch distance of each position; the top-k mean per view, standardized, combined."""
        views: dict[str, Tensor] = {}
        maps: dict[str, Tensor] = {}
        for view in self.views:
            patches = feats["patch"][view]
            _, channels, height, width = patches.shape
            positions = height * width
            rows = patches.permute(0, 2, 3, 1).reshape(-1, positions, channels)
            search, step = _search(self.searches, self.search_of[view]), self._block(view, positions)
            blocks = [  # blocks of positions bound the (queries, bank rows) ranking of a large bank
                search(rows[:, start : start + step].reshape(-1, channels), 1).reshape(
                    -1, min(step, positions - start)
                )
                for start in range(0, positions, step)
            ]
            nearest = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
            top = nearest.topk(min(self.top_k, height * width), dim=1).values.double().mean(dim=1)
            mean, std = self.stats[view]
            views[view] = (top - mean) / std
            maps[view] = ((nearest.double() - mean) / std).reshape(-1, height, width)
        stacked = torch.stack(list(views.values()), dim=1)
        score = stacked.amax(dim=1) if self.view_combine == "max" else stacked.mean(dim=1)
        return HeadOutput(score, views, maps=maps)


class ReconHead(nn.Module):
    """The ``recon`` rule (:class:`~mmocc.scoring.distance.ReconScore`): summed error, view errors, maps."""

    def __init__(self, rule: ReconScore, views: list[str]) -> None:
        super().__init__()
        self.views = views
        self.stats = {view: (float(rule.stats[view][0]), float(rule.stats[view][1])) for view in rule.stats}

    def forward(self, feats: FeatureTensors) -> HeadOutput:
        """Return the summed squared error (float32, as the rule), each view's and pixel's standardized."""
        recons = feats["recon"]
        total = recons[self.views[0]]
        for view in self.views[1:]:
            total = total + recons[view]
        views, maps = {}, {}
        for view in self.views:
            if view in self.stats:
                mean, std = self.stats[view]
                views[view] = (recons[view].double() - mean) / std
        for view, pixels in feats.get("recon_map", {}).items():
            mean, std = self.stats[view]
            maps[view] = (pixels.double() * (pixels.shape[1] * pixels.shape[2]) - mean) / std
        return HeadOutput(total.double(), views, maps=maps)


class LatentHead(nn.Module):
    """``norm``, ``center`` and ``mahalanobis``: a distance of the joint latent, in float64."""

    location: Tensor
    precision: Tensor

    def __init__(self, rule: ScoringRule, views: list[str]) -> None:
        super().__init__()
        self.views = views
        self.mahalanobis = isinstance(rule, MahalanobisScore)
        if isinstance(rule, MahalanobisScore):
            location, precision = rule.location, rule.precision
        else:
            location = rule.center if isinstance(rule, CenterScore) else np.zeros(1)
            precision = np.zeros((0, 0))
        self.register_buffer("location", _double(location))
        self.register_buffer("precision", _double(precision))

    def forward(self, feats: FeatureTensors) -> HeadOutput:
        """``||phi - c||`` (c = 0 for ``norm``), or ``sqrt(max(d^T P d, 0))``."""
        diff = torch.cat([feats["latent"][view] for view in self.views], dim=1).double() - self.location
        if self.mahalanobis:
            return HeadOutput(((diff @ self.precision) * diff).sum(dim=1).clamp_min(0.0).sqrt())
        return HeadOutput(diff.pow(2).sum(dim=1).sqrt())


class EnsembleHead(nn.Module):
    """``ensemble`` and ``combined``: the mean of standardized part scores.

    For ``combined``, the part scores are reported, and the view scores and
    maps are the local part's.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, rule: EnsembleScore, views: list[str]) -> None:
        super().__init__()
        self.parts = nn.ModuleDict({name: rule_head(part, views) for name, part in rule.parts.items()})
        self.combined = isinstance(rule, CombinedScore)
        self.register_buffer("mean", _double(rule.mean))
        self.register_buffer("std", _double(rule.std))

    def bytes_per_sample(self, feats: FeatureTensors) -> int:
        """Return the largest of the parts' search bytes per sample (parts run in turn)."""
        return max(search_bytes(head, feats) for head in self.parts.values())

    def forward(self, feats: FeatureTensors) -> HeadOutput:
        """Standardize each part's score by its training scores; average; keep the local part's details."""
        outputs = {name: head(feats) for name, head in self.parts.items()}
        z = (torch.stack([out.score for out in outputs.values()], dim=1) - self.mean) / self.std
        if not self.combined:
            return HeadOutput(z.mean(dim=1))
        local = outputs["local"]
        parts = {name: z[:, i] for i, name in enumerate(outputs)}
        return HeadOutput(z.mean(dim=1), local.views, parts, local.maps)


def search_bytes(head: nn.Module, feats: FeatureTensors) -> int:
    """Bytes of search intermediates per sample of a head (0 for a head without searches).

    Parameters
    ----------
    head : torch.nn.Module
        A head of :func:`rule_head`.
    feats : FeatureTensors
        Features of an example batch (the patch maps' sizes).

    Returns
    -------
    int
        Bytes per sample.
    """
    cost = getattr(head, "bytes_per_sample", None)
    return int(cost(feats)) if cost is not None else 0


def rule_head(rule: ScoringRule, views: list[str]) -> nn.Module:
    """Return the exportable head of a fitted scoring rule.

    Parameters
    ----------
    rule : ScoringRule
        The fitted rule of a model.
    views : list of str
        The model's views, in order (every view is an input of the graph).

    Returns
    -------
    torch.nn.Module
        A module mapping :data:`~mmocc.model.inference.FeatureTensors` to a :class:`HeadOutput`.

    Raises
    ------
    ValueError
        For a rule that has no exportable head.
    """
    if isinstance(rule, KNNScore):
        return KNNHead(rule, views)
    if isinstance(rule, PatchScore):
        return PatchHead(rule, views)
    if isinstance(rule, ReconScore):
        return ReconHead(rule, views)
    if isinstance(rule, NormScore | CenterScore | MahalanobisScore):
        return LatentHead(rule, views)
    if isinstance(rule, EnsembleScore):
        return EnsembleHead(rule, views)
    raise ValueError(f"score={rule.name!r} cannot be exported to ONNX: no graph expresses it")
