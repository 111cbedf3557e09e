"""The estimators.

The shared base and its parameter checks (:mod:`~mmocc.detectors.base`), the
joint autoencoder (:mod:`~mmocc.detectors.multimodal`) and the PyOD wrappers
(:mod:`~mmocc.detectors.baselines`).
"""
