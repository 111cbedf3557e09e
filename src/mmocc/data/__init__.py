"""Multi-view datasets: the in-memory container and the sources that build it.

Every source returns a :class:`MultiViewDataset`. Image sources decode with
Pillow, resize with Lanczos to ``size`` x ``size`` (stretched, or padded or
cropped to keep the aspect ratio: the ``resize`` option), store uint8
``(n, C, H, W)`` arrays and cache them on disk (see
:mod:`mmocc.data.images` and :mod:`mmocc.data.cache`).

- :func:`load_manifest`: a CSV listing one image path per view and sample.
- :func:`load_folder`: ``root/<label>/<sample_id>/<view>.<ext>`` (or, unlabelled,
  ``root/<sample_id>/<view>.<ext>``).
- :func:`load_pairs`: one folder per camera, files paired by stem (unlabelled).
- :func:`load_turntable`: COIL-20 / COIL-100 style ``obj{K}__{P}`` photos,
  paired ``delta_deg`` apart.
- :func:`load_mfeat`: UCI Multiple Features digits, an image plus vectors.
- :func:`load_mvtec`: the MVTec AD layout ``train/good``, ``test/<type>``,
  ``ground_truth/<type>``, with one view or one folder of views per sample.
- :func:`load_mtile`: Magnetic-tile ``MT_<class>/Imgs/exp<k>_num_<n>.jpg``, six
  lightings of each tile (or one image at a time), with masks.
- :func:`make_synthetic`: procedural two-camera demo data.
"""

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.folder import load_folder
from mmocc.data.manifest import load_manifest
from mmocc.data.mfeat import load_mfeat
from mmocc.data.mtile import load_mtile
from mmocc.data.mvtec import load_mvtec
from mmocc.data.pairs import load_pairs
from mmocc.data.synthetic import make_synthetic
from mmocc.data.turntable import load_turntable

__all__ = [
    "MultiViewDataset",
    "load_folder",
    "load_manifest",
    "load_mfeat",
    "load_mtile",
    "load_mvtec",
    "load_pairs",
    "load_turntable",
    "make_synthetic",
]
