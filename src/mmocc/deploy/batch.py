"""Apply a fitted model to a source in chunks: the loader options it implies, the scores, the CSV columns.

``mmocc score``, ``mmocc evaluate``, ``mmocc report`` and
:func:`mmocc.deploy.cluster.score` share these (:func:`plan_for_model`
reads a source for a model), so one source gives the same
chunks, scores and rows whichever of them reads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from mmocc.data.sources import Source
    from mmocc.data.streaming import SourcePlan


def model_data_options(clf: Any, source: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Return the loader options that read a source the way a model expects.

    Parameters
    ----------
    clf : fitted MultimodalOCC
        The model.
    source : mmocc.data.sources.Source
        The parsed source.
    options : dict
        Loader options given by the user; they win over the derived ones
        (``views={"left": "front", "right": "side"}`` reads a manifest's
        columns ``left`` and ``right`` as the model's views ``front`` and
        ``side``).

    Returns
    -------
    dict
        ``options`` plus the image ``size`` and colour ``mode`` of the
        model's first image view and the ``resize`` mode its training data
        was read with (``metadata_["resize"]``, which ``mmocc train``
        records; none for older models, which read with the loaders'
        default), where the source accepts them, and the
        model's ``views`` where the source's kind selects views for a model
        (:attr:`mmocc.data.sources.SourceKind.model_views`), unless its SRC
        string or ``options`` sets them.
    """
    from mmocc.data.sources import SOURCES

    accepted = source.option_names()
    derived: dict[str, Any] = {}
    images = [spec for spec in clf.view_specs_ if spec.kind == "image"]
    if images and "size" in accepted:
        derived["size"] = images[0].shape[1]
    if images and "mode" in accepted and images[0].shape[0] in (1, 3):
        derived["mode"] = "L" if images[0].shape[0] == 1 else "RGB"
    resize = (getattr(clf, "metadata_", None) or {}).get("resize")
    if resize is not None and "resize" in accepted:
        derived["resize"] = resize
    if SOURCES[source.kind].model_views:
        derived["views"] = [spec.name for spec in clf.view_specs_]
    derived = {key: value for key, value in derived.items() if key not in source.options}
    return {**derived, **options}


def load_detector(model_path: str | os.PathLike[str], device: str) -> Any:
    """Load a model file, or an ONNX export (by its ``.onnx`` suffix), for scoring.

    Parameters
    ----------
    model_path : path-like
        A ``.mmocc`` model file (:func:`mmocc.load`) or an ``.onnx`` export
        (:class:`mmocc.export.runtime.OnnxDetector`, which needs ONNX Runtime,
        not torch).
    device : str
        Torch device of a model file (an export runs on ONNX Runtime's CPU provider).

    Returns
    -------
    fitted detector
        Either offers ``decision_function_details``, ``anomaly_maps``,
        ``threshold_``, ``view_specs_`` and ``metadata_``.
    """
    from mmocc.export.runtime import OnnxDetector, is_onnx_file

    if is_onnx_file(model_path):
        return OnnxDetector.load(model_path)
    import mmocc

    return mmocc.load(model_path, device=device)


def plan_for_model(
    model_path: str | os.PathLike[str], src: str | Source, options: Mapping[str, Any], device: str
) -> tuple[Any, SourcePlan]:
    """Load a model and list a data source the way the model reads it, without decoding it.

    This is how ``mmocc score``, ``evaluate`` and ``report`` read their data.

    Parameters
    ----------
    model_path : path-like
        The model file, or an ONNX export (see :func:`load_detector`).
    src : str or mmocc.data.sources.Source
        The data source: a SRC string (see :mod:`mmocc.data.sources`), or
        an already parsed one.
    options : mapping
        Loader options given by the user, already parsed (the CLI's
        ``-O KEY=VALUE`` items through
        :func:`mmocc.cli.options.parse_data_options`); they win over the
        options derived from the model (see :func:`model_data_options`).
    device : str
        Torch device of the model (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

    Returns
    -------
    clf : fitted detector
        The model, as :func:`load_detector` returns it.
    plan : mmocc.data.streaming.SourcePlan
        The listed samples, at the image size, colour mode and views the
        model expects; decode them with :meth:`SourcePlan.chunks`.

    Raises
    ------
    ValueError, FileNotFoundError
        For a model file that cannot be read, and as
        :func:`mmocc.data.streaming.plan_source` does for the source and
        the options.
    """
    from mmocc.data.sources import parse_source
    from mmocc.data.streaming import plan_source

    clf = load_detector(model_path, device)
    source = parse_source(src) if isinstance(src, str) else src
    return clf, plan_source(source, **model_data_options(clf, source, dict(options)))


def score_chunks(
    clf: Any, dataset: Any, batch_size: int, quiet: bool
) -> Iterator[tuple[Any, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Score a dataset chunk by chunk, with a progress bar.

    Parameters
    ----------
    clf : fitted detector
        Has ``decision_function``.
    dataset : MultiViewDataset, SourcePlan or iterable of MultiViewDataset
        The samples to score: in memory, a source decoded chunk by chunk as
        it is scored (:class:`mmocc.data.streaming.SourcePlan`), or a stream
        of datasets. Streamed samples are regrouped into chunks of
        ``batch_size``, as an in-memory dataset is sliced.
    batch_size : int
        Samples per chunk.
    quiet : bool
        Hide the progress bar (it shows only on a terminal anyway).

    Yields
    ------
    (MultiViewDataset, numpy.ndarray, dict, dict)
        The chunk, its anomaly scores, its per-view scores (empty when the
        model's rule scores views jointly, or it has no per-view scores) and
        its part scores (``score="combined"``'s ``"global"`` and
        ``"local"``; empty for the other rules).
    """
    from tqdm.auto import tqdm

    from mmocc.data.dataset import MultiViewDataset
    from mmocc.data.streaming import SourcePlan, rebatch

    if isinstance(dataset, MultiViewDataset):
        chunks: Iterable[Any] = (
            dataset[start : start + batch_size] for start in range(0, len(dataset), batch_size)
        )
        total: int | None = -(-len(dataset) // batch_size)
    else:
        total = -(-len(dataset) // batch_size) if isinstance(dataset, SourcePlan) else None
        stream = dataset.chunks(batch_size) if isinstance(dataset, SourcePlan) else dataset
        chunks = rebatch(stream, batch_size)
    for chunk in tqdm(chunks, total=total, desc="scoring", unit="chunk", disable=True if quiet else None):
        if hasattr(clf, "decision_function_details"):
            yield chunk, *clf.decision_function_details(chunk)
        else:
            yield chunk, clf.decision_function(chunk), {}, {}


def score_columns(
    chunk: Any,
    scores: np.ndarray,
    threshold: float,
    by_view: dict[str, np.ndarray],
    parts: dict[str, np.ndarray] | None = None,
) -> dict[str, list[Any]]:
    """Return the columns ``mmocc score`` writes for one chunk, in order.

    Parameters
    ----------
    chunk : MultiViewDataset
        The samples.
    scores : numpy.ndarray
        Their anomaly scores.
    threshold : float
        The model's threshold.
    by_view : dict of str to numpy.ndarray
        Their per-view scores (may be empty).
    parts : dict of str to numpy.ndarray, optional
        Their part scores (``score="combined"``); None or empty for the other rules.

    Returns
    -------
    dict of str to list
        ``sample_id``, ``label`` (labelled data only), ``score``,
        ``is_anomaly``, then with part scores ``fired`` (the part with the
        larger score: ``global`` = another object, ``local`` = a defect on
        this object) and ``part_<part>`` per part, ``score_<view>`` per view
        score and ``path_<view>`` per view read from files.
    """
    columns: dict[str, list[Any]] = {"sample_id": chunk.ids.tolist()}
    if chunk.labels is not None:
        columns["label"] = chunk.labels.tolist()
    columns["score"] = scores.tolist()
    columns["is_anomaly"] = (scores > threshold).astype(int).tolist()
    if parts:
        from mmocc.detectors.parts import fired_part

        columns["fired"] = fired_part(parts).tolist()
        columns.update({f"part_{name}": values.tolist() for name, values in parts.items()})
    columns.update({f"score_{view}": values.tolist() for view, values in by_view.items()})
    columns.update({f"path_{view}": paths.tolist() for view, paths in chunk.paths.items()})
    return columns
