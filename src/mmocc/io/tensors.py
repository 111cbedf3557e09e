"""The tensors of a model file: what each must be, checked against the model the header describes.

A model file's tensors are trusted only after :func:`check_tensors` has
compared each with an :class:`Expect` (dtype, shape, finite values, and for
scales a sign) derived from the header: :func:`model_expectations` from the
architecture (built on the ``meta`` device, which allocates nothing),
:func:`score_expectations` from the training-set sizes, and the scoring
rule's own :meth:`~mmocc.scoring.base.ScoringRule.state_spec` from the widths
of the features it reads (:class:`~mmocc.scoring.state.FeatureDims`, see
:func:`feature_dims`). :func:`check_no_others` refuses
tensors nothing expects. Every error is a ``ValueError`` naming the file
and the tensor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import torch

from mmocc.data.inputs import ViewSpec
from mmocc.model.backbones import FeatureBackbone
from mmocc.scoring.state import Expect, FeatureDims


def patch_channels(filters: Sequence[int], backbone: FeatureBackbone | None) -> int:
    """Channels of the patch features, as :class:`mmocc.model.patches.PatchFeatures` computes them.

    Parameters
    ----------
    filters : sequence of int
        The autoencoder's encoder filters.
    backbone : FeatureBackbone or None
        The pretrained or custom backbone; None for the autoencoder's own maps
        (after its first two pooling blocks when it has three or more, else the first).

    Returns
    -------
    int
        The channels of one patch feature vector.

    Examples
    --------
    >>> patch_channels((8, 4, 4), None), patch_channels((8, 4), None)
    (12, 8)
    """
    if backbone is not None:
        return sum(backbone.channels)
    return sum(filters[:2]) if len(filters) >= 3 else filters[0]


def feature_dims(
    latent: Mapping[str, int], specs: Sequence[ViewSpec], patch_width: int, n_train: int
) -> FeatureDims:
    """Collect the feature widths of a model's views.

    Parameters
    ----------
    latent : mapping of str to int
        Flattened latent width of each view (``JointAutoencoder.latent_dims()``).
    specs : sequence of ViewSpec
        The views.
    patch_width : int
        Patch feature channels (:func:`patch_channels`).
    n_train : int
        Training samples the rule was fitted on.

    Returns
    -------
    FeatureDims
        The widths.
    """
    return FeatureDims(
        latent=dict(latent),
        input={spec.name: math.prod(spec.shape) for spec in specs},
        patch={spec.name: patch_width for spec in specs if spec.kind == "image"},
        n_train=n_train,
    )


def model_expectations(state: Mapping[str, torch.Tensor]) -> dict[str, Expect]:
    """Expect the state dict of a freshly built module: same names, shapes and dtypes.

    Parameters
    ----------
    state : mapping of str to Tensor
        The state dict of the module the header describes (``meta`` tensors will do).

    Returns
    -------
    dict of str to Expect
        One per ``model.<name>``; BatchNorm variances must be >= 0, input scales > 0.
    """
    out = {}
    for name, tensor in state.items():
        values = "nonnegative" if name.endswith("running_var") else "finite"
        if name.startswith("scalers.") and name.endswith(".std"):
            values = "positive"
        out[f"model.{name}"] = Expect(tuple(tensor.shape), (tensor.dtype,), values=values)
    return out


def score_expectations(
    n_samples_in: int, n_train: int, n_calibration: int | None, center_width: int, center_required: bool
) -> dict[str, Expect]:
    """Expect the training scores, fingerprints, calibration scores and centre.

    Parameters
    ----------
    n_samples_in : int
        Samples given to ``fit`` (the header's ``n_samples_in``).
    n_train : int
        Length of the stored training scores: ``n_samples_in`` unless some were
        held out (then the file must hold calibration scores).
    n_calibration : int or None
        Length of the stored calibration scores; None when there are none.
    center_width : int
        Width of the joint latent.
    center_required : bool
        Whether the scoring rule reads the centre.

    Returns
    -------
    dict of str to Expect
        For ``decision_scores``, ``train_fingerprints``, ``calibration_scores`` and ``center``.
    """
    # without calibration scores every sample was fitted on; with them, some may have been held out
    scores = n_samples_in if n_calibration is None else min(n_train, n_samples_in)
    out = {
        "decision_scores": Expect((scores,)),
        "train_fingerprints": Expect((n_samples_in,), (torch.int64,), required=False),
        "center": Expect((center_width,), required=center_required),
    }
    if n_calibration is not None:
        out["calibration_scores"] = Expect((n_calibration,))
    return out


def calibration_view_expectations(views: Sequence[str], n_calibration: int) -> dict[str, Expect]:
    """Expect the optional per-view calibration scores of each view.

    Parameters
    ----------
    views : sequence of str
        The view names.
    n_calibration : int
        Length of the stored calibration scores.

    Returns
    -------
    dict of str to Expect
        One optional ``calibration_view.<view>`` per view.
    """
    return {f"calibration_view.{view}": Expect((n_calibration,), required=False) for view in views}


def _shape_matches(shape: torch.Size, expected: tuple[int | None, ...]) -> bool:
    if len(shape) != len(expected):
        return False
    pairs = zip(shape, expected, strict=True)
    return all(size == want if want is not None else size >= 1 for size, want in pairs)


def _shape_text(shape: tuple[int | None, ...]) -> str:
    """Write an expected shape, ``n`` for an axis of any length: ``(n, 64)``."""
    sizes = ["n" if size is None else str(size) for size in shape]
    return f"({sizes[0]},)" if len(sizes) == 1 else f"({', '.join(sizes)})"


def _value_problem(tensor: torch.Tensor, values: str) -> str | None:
    """Say what is wrong with a floating tensor's values; None when nothing is."""
    if not bool(torch.isfinite(tensor).all()):
        return "holds NaN or infinite values"
    if values == "positive" and not bool((tensor > 0).all()):
        return "holds scales <= 0"
    if values == "nonnegative" and not bool((tensor >= 0).all()):
        return "holds negative variances"
    if values == "mean_std" and not float(tensor[1]) > 0:
        return "holds a standard deviation <= 0"
    return None


def _problem(tensor: torch.Tensor, expect: Expect) -> str | None:
    """Say what is wrong with one tensor; None when nothing is."""
    if tensor.dtype not in expect.dtypes:
        allowed = " or ".join(str(d).removeprefix("torch.") for d in expect.dtypes)
        return f"has dtype {str(tensor.dtype).removeprefix('torch.')}, expected {allowed}"
    if not _shape_matches(tensor.shape, expect.shape):
        return f"has shape {tuple(tensor.shape)}, expected {_shape_text(expect.shape)}"
    if tensor.is_floating_point():
        return _value_problem(tensor, expect.values)
    return None


def check_tensors(
    tensors: Mapping[str, torch.Tensor], expected: Mapping[str, Expect], path: str | os.PathLike[str]
) -> None:
    """Check each expected tensor: present if required, its dtype, shape and values.

    Parameters
    ----------
    tensors : mapping of str to Tensor
        The file's tensors.
    expected : mapping of str to Expect
        What the tensors of these names must be.
    path : str or path-like
        The model file (for messages).

    Raises
    ------
    ValueError
        Naming the file and the first tensor that is missing or wrong.
    """
    for name, expect in expected.items():
        if name not in tensors:
            if expect.required:
                raise ValueError(f"{str(path)!r}: the model file has no tensor {name!r} (a damaged file?)")
            continue
        problem = _problem(tensors[name], expect)
        if problem:
            raise ValueError(f"{str(path)!r}: tensor {name!r} {problem}")


def check_no_others(
    tensors: Mapping[str, torch.Tensor], known: set[str], path: str | os.PathLike[str]
) -> None:
    """Refuse tensors that nothing reads.

    Parameters
    ----------
    tensors : mapping of str to Tensor
        The file's tensors.
    known : set of str
        The names expected.
    path : str or path-like
        The model file (for messages).

    Raises
    ------
    ValueError
        Naming the file and the first unexpected tensor.
    """
    others = sorted(set(tensors) - known)
    if others:
        raise ValueError(f"{str(path)!r}: unexpected tensor {others[0]!r} (a damaged file?)")
