"""The estimators.

The shared base (:mod:`~mmocc.detectors.base`), the joint autoencoder
(:mod:`~mmocc.detectors.multimodal`) and the PyOD wrappers
(:mod:`~mmocc.detectors.baselines`). Their parameters are checked against one
table of constraints, :mod:`mmocc.model.params`.
"""
