"""The model: torch modules, losses, the training engine, typed hyper-parameters and fast inference.

- :mod:`mmocc.model.nn`: the joint autoencoder (exportable, no training logic);
- :mod:`mmocc.model.losses`: eq. (3), the WLD-Reg diversity terms, :class:`~mmocc.model.losses.JointLoss`;
- :mod:`mmocc.model.training`: :func:`~mmocc.model.training.fit_autoencoder` and its callbacks;
- :mod:`mmocc.model.hyperparams`: :class:`~mmocc.model.hyperparams.HyperParams` and the presets;
- :mod:`mmocc.model.augment`: view-consistent augmentation;
- :mod:`mmocc.model.inference`: BatchNorm folding and batched feature extraction;
- :mod:`mmocc.model.device`: device selection.
"""
