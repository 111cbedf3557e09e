"""Public home of the multi-view dataset sources (implemented in :mod:`mmocc.data`).

- :class:`MultiViewDataset`: the in-memory container every source returns.
- :func:`load_manifest`: a CSV listing one image path per view and sample.
- :func:`load_folder`: ``root/<label>/<sample_id>/<view>.<ext>`` or ``root/<sample_id>/<view>.<ext>``.
- :func:`load_pairs`: one folder per camera, files paired by stem (unlabelled).
- :func:`load_turntable`: COIL-20 / COIL-100 style ``obj{K}__{P}`` photos.
- :func:`load_mfeat`: UCI Multiple Features digits, an image plus vectors.
- :func:`load_mvtec`: the MVTec AD layout (``train/good``, ``test/<type>``, ``ground_truth/<type>``).
- :func:`load_mtile`: Magnetic-tile (``MT_<class>/Imgs/exp<k>_num_<n>.jpg``), six lightings per tile.
- :func:`make_synthetic`: procedural two-camera demo data.
"""

from mmocc.data import (
    MultiViewDataset,
    load_folder,
    load_manifest,
    load_mfeat,
    load_mtile,
    load_mvtec,
    load_pairs,
    load_turntable,
    make_synthetic,
)

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
