"""What ``mmocc info`` says about a model file or an ONNX export: a summary, and the settings it reads.

Only the standard library is imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_KNN_SETTINGS = ("n_neighbors", "knn_bank", "knn_space", "knn_search")
_PATCH_SETTINGS = (
    "patch_backbone",
    "patch_size",
    "patch_layers",
    "tile_size",
    "tile_overlap",
    "coreset_ratio",
    "coreset_candidates",
    "coreset_method",
    "knn_search",
    "patch_top_k",
    "view_combine",
)

#: The hyper-parameters of each scoring rule that reads some; all others but ``score`` are the autoencoder's.
_RULE_SETTINGS = {
    "knn": _KNN_SETTINGS,
    "ensemble": _KNN_SETTINGS,
    "combined": tuple(dict.fromkeys(_KNN_SETTINGS + _PATCH_SETTINGS)),  # both parts' settings
    "patch": _PATCH_SETTINGS,
}


def used_settings(params: dict[str, Any]) -> list[str]:
    """Return the hyper-parameters that a model with these resolved ``params`` reads, in their order.

    The score and its rule's settings (both parts' for ``combined``); the
    autoencoder's unless the score reads only a pretrained backbone, which trains none (the view grouping,
    ``shared_weights``, still decides the banks), and ``patch_size`` only
    then (and ``patch_layers``); the shift and diversity settings only when that augmentation or
    regularizer is on.

    Parameters
    ----------
    params : dict
        The resolved hyper-parameters, as a model file's header stores them.

    Returns
    -------
    list of str
        The names read by the model's score, backbone or autoencoder.

    Examples
    --------
    >>> used_settings({"epochs": 15, "score": "patch", "patch_backbone": "efficientnet_lite0"})
    ['score', 'patch_backbone']
    >>> used_settings({"epochs": 15, "score": "knn", "patch_backbone": "autoencoder", "n_neighbors": 5})
    ['epochs', 'score', 'n_neighbors']
    >>> used_settings({"epochs": 15, "score": "combined", "patch_backbone": "efficientnet_lite0",
    ...                "patch_size": 64})
    ['epochs', 'score', 'patch_backbone', 'patch_size']
    """
    own = _RULE_SETTINGS.get(params.get("score", ""), ())
    backbone = "patch_size" in own and params.get("patch_backbone", "autoencoder") != "autoencoder"
    if backbone and params.get("score") == "patch":  # no autoencoder is trained
        used = {"score", "shared_weights", *own}
    else:
        rules = {name for names in _RULE_SETTINGS.values() for name in names}
        used = {name for name in params if name not in rules} | set(own)
        if not backbone:
            used -= {"patch_size", "patch_layers"}
    if params.get("augment") == "none":
        used.discard("augment_shift")
    if params.get("diversity") is None:
        used -= {"diversity_weight", "diversity_gamma"}
    return [name for name in params if name in used]


def info_lines(model: Path, config: dict[str, Any]) -> list[str]:
    """Return the readable summary ``mmocc info`` prints.

    Parameters
    ----------
    model : pathlib.Path
        The model file, as given.
    config : dict
        Its JSON header, plus ``used_params`` and ``unused_params``
        (:func:`used_settings` and the rest).

    Returns
    -------
    list of str
        The lines.
    """
    explicit = {k: v for k, v in config["estimator_params"].items() if v is not None}
    meta = config.get("metadata") or {}
    training = config.get("training") or {}
    view_sources = meta.get("view_sources")
    sources: dict[str, Any] = view_sources if isinstance(view_sources, dict) else {}
    holdout = meta.get("holdout") if isinstance(meta.get("holdout"), dict) else None
    held = (
        f"; {holdout.get('n_held_out')} normal samples held out ({holdout.get('split')} split, "
        f"fraction {holdout.get('fraction')}, seed {holdout.get('seed')})"
        if holdout
        else ""
    )
    fingerprint = training.get("fingerprint")
    lines = [
        f"model:      {model}",
        f"created:    {config.get('created', '?')} by mmocc {config['mmocc_version']}, "
        f"torch {config['torch_version']}; trained on {config.get('trained_on', '?')}",
        f"normal:     {meta['normal']}" if "normal" in meta else "normal:     (not recorded)",
        f"data:       {meta.get('source', '(not recorded)')}",
        "views:",
        *(
            f"  {v['name']:<16} {v['kind']:<7} {str(tuple(v['shape'])):<14} {sources.get(v['name'], '')}"
            for v in config["views"]
        ),
        f"threshold:  {config['threshold']:.6g} (from {config.get('threshold_source', 'train')}; "
        f"contamination {explicit.get('contamination')})",
        f"training:   {config['n_samples_in']} samples{held}",
        f"            {training.get('n_calibration', 0)} of them held out to set the threshold"
        if training.get("n_calibration")
        else "",
        f"            fingerprint {fingerprint[:16]}" if fingerprint else "",
        f"preset:     {explicit.get('preset')}",
        "parameters: " + ", ".join(f"{k}={config['params'][k]}" for k in config["used_params"]),
        f"not used:   {', '.join(config['unused_params'])} (not read by this model's score or backbone)"
        if config["unused_params"]
        else "",
    ]
    history = config.get("history") or []
    if history:
        lines.append(f"history:    {len(history)} epochs, final loss {history[-1]['loss']:.6g}")
    return [line for line in lines if line]


def onnx_info_lines(model: Path, info: Any) -> list[str]:
    """Return the readable summary ``mmocc info`` prints for an ONNX export.

    Parameters
    ----------
    model : pathlib.Path
        The ``.onnx`` file, as given.
    info : mmocc.export.metadata.ExportInfo
        Its checked metadata.

    Returns
    -------
    list of str
        The lines: views with their graph inputs, outputs, threshold,
        training set, preset and settings, and the parity check of the export.
    """
    from mmocc.export.metadata import output_order
    from mmocc.export.parity import ParityReport

    meta, outputs = info.metadata, info.outputs
    used = used_settings(info.params)
    fingerprints = info.train_fingerprints
    lines = [
        f"model:      {model} (ONNX export, written by mmocc {info.version})",
        f"normal:     {meta['normal']}" if "normal" in meta else "normal:     (not recorded)",
        f"data:       {meta.get('source', '(not recorded)')}",
        "views:      (graph input, dtype, per-sample shape, colour mode and resize of images)",
        *(
            f"  {spec.name:<16} {spec.kind:<7} {info.inputs[spec.name]:<12} "
            f"{info.preprocess[spec.name]['dtype']:<8} {str(tuple(spec.shape)):<14} "
            f"{info.preprocess[spec.name].get('mode') or ''} {info.preprocess[spec.name].get('resize') or ''}"
            for spec in info.view_specs
        ),
        "outputs:    " + ", ".join(output_order(outputs)),
        f"threshold:  {info.threshold:.6g} (from {info.threshold_source}; "
        f"contamination {info.contamination})",
        f"training:   {len(fingerprints)} samples" if fingerprints is not None else "",
        f"            fingerprint {info.train_fingerprint[:16]}" if info.train_fingerprint else "",
        f"preset:     {info.preset}",
        "parameters: " + ", ".join(f"{k}={info.params[k]}" for k in used),
        f"runs:       at most {info.samples_per_run} samples per run of the graph",
    ]
    lines += ParityReport.from_dict(info.parity).summary().splitlines() if info.parity else []
    return [line for line in lines if line]
