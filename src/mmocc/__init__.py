"""mmocc: multimodal one-class classification.

Learn what "normal" looks like from normal samples seen through several views
(two camera images, an image and a feature vector, ...) and flag what does not
fit. The main entry point is :class:`MultimodalOCC`; :class:`BaselineOCC`
wraps PyOD detectors behind the same interface; :func:`one_class_split` draws
the paper's protocol from a :class:`mmocc.datasets.MultiViewDataset`.
"""

__version__ = "0.1.0"

from mmocc import datasets, metrics  # noqa: E402
from mmocc.baselines import BaselineOCC  # noqa: E402
from mmocc.detector import MultimodalOCC  # noqa: E402
from mmocc.io import load  # noqa: E402
from mmocc.tasks import one_class_split, one_class_tasks  # noqa: E402

__all__ = [
    "BaselineOCC",
    "MultimodalOCC",
    "__version__",
    "datasets",
    "load",
    "metrics",
    "one_class_split",
    "one_class_tasks",
]
