"""mmocc: multimodal one-class classification.

Learn what "normal" looks like from normal samples seen through several views
(two camera images, an image and a feature vector, ...) and flag what does not
fit. The main entry point is :class:`MultimodalOCC`.
"""

__version__ = "0.1.0"

from mmocc.detector import MultimodalOCC  # noqa: E402
from mmocc.io import load  # noqa: E402

__all__ = ["MultimodalOCC", "__version__", "load"]
