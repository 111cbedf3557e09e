"""mmocc: multimodal one-class classification.

Learn what "normal" looks like from normal samples seen through several views
(two camera images, an image and a feature vector, ...) and flag what does not
fit. The main entry point is :class:`MultimodalOCC`; :class:`BaselineOCC`
wraps PyOD detectors behind the same interface; :func:`one_class_split` draws
the paper's protocol from a :class:`mmocc.datasets.MultiViewDataset`.

The package is laid out along the data flow: :mod:`mmocc.data` (sources,
datasets, input checks, splits) -> :mod:`mmocc.model` (torch modules, losses,
training, hyper-parameters) -> :mod:`mmocc.scoring` (scoring rules) ->
:mod:`mmocc.detectors.multimodal` (the estimator) -> :mod:`mmocc.evaluation` (metrics,
experiments, reports) -> :mod:`mmocc.cli`. Attributes are imported on first
use (PEP 562), so ``import mmocc`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.6.0"

_LAZY = {
    "BaselineOCC": ("mmocc.detectors.baselines", "BaselineOCC"),
    "HyperParams": ("mmocc.model.hyperparams", "HyperParams"),
    "MultimodalOCC": ("mmocc.detectors.multimodal", "MultimodalOCC"),
    "load": ("mmocc.io.model_file", "load"),
    "one_class_split": ("mmocc.data.tasks", "one_class_split"),
    "one_class_tasks": ("mmocc.data.tasks", "one_class_tasks"),
    "datasets": ("mmocc.datasets", None),
    "distributed": ("mmocc.distributed", None),
    "metrics": ("mmocc.metrics", None),
}

if TYPE_CHECKING:
    from mmocc import datasets, distributed, metrics
    from mmocc.data.tasks import one_class_split, one_class_tasks
    from mmocc.detectors.baselines import BaselineOCC
    from mmocc.detectors.multimodal import MultimodalOCC
    from mmocc.io.model_file import load
    from mmocc.model.hyperparams import HyperParams


def __getattr__(name: str) -> Any:
    """Import a public attribute on first access (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'mmocc' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public attributes, including those not imported yet."""
    return sorted([*globals(), *_LAZY])


__all__ = [
    "BaselineOCC",
    "HyperParams",
    "MultimodalOCC",
    "__version__",
    "datasets",
    "distributed",
    "load",
    "metrics",
    "one_class_split",
    "one_class_tasks",
]
