"""A straightforward eager implementation of the paper model, as the speed reference for the COIL-20 protocol.

Laakom et al. (2023), as :data:`mmocc.model.hyperparams.PAPER` describes it:
per view a convolutional autoencoder (3 blocks of conv 3x3, BatchNorm, ReLU,
max-pool 2, dropout 0.1; filters 64, 32, 16; a mirrored decoder with nearest
upsampling), shared weights across views, loss = ||phi||^2 + reconstruction
MSE, Adam (lr 1e-3, weight decay 1e-3), 4 epochs, batch 32, inputs scaled to
[0, 1]; the score is ||phi|| of the eval-mode model. Written the way one
would without a speed budget: ``nn.Sequential``, NCHW, float32, batch 32 in
scoring too, no BatchNorm folding, no channels-last, no micro-batches.

It is not part of mmocc; ``benchmarks/speed.py`` times it against
``mmocc.evaluation.runner.run_experiment`` on the same tasks.

Usage (from the repository root)::

    python benchmarks/paper_reference.py --tasks 2     # ROC AUC and seconds of the first 2 COIL-20 tasks
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from mmocc import one_class_split
from mmocc.datasets import load_turntable

ROOT = Path(__file__).resolve().parents[1]
COIL = ROOT.parent / "shared" / "data" / "coil-20-proc"
FILTERS = (64, 32, 16)
EPOCHS, BATCH, LR, WEIGHT_DECAY, DROPOUT = 4, 32, 1e-3, 1e-3, 0.1
VIEWS = {"multimodal": ("front", "side"), "front": ("front",), "side": ("side",)}
"""The protocol's three models: both views, and each view alone."""


def autoencoder(channels: int, size: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The paper's encoder and decoder for ``channels`` x ``size`` x ``size`` images."""
    enc: list[nn.Module] = []
    c_in = channels
    for c_out in FILTERS:
        enc += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(DROPOUT)]
        c_in = c_out
    dec: list[nn.Module] = []
    sizes = [size // 2**i for i in range(len(FILTERS))]
    for c_out, side in zip(reversed(FILTERS), reversed(sizes), strict=True):
        dec += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Upsample(size=(side, side), mode="nearest")]
        c_in = c_out
    dec.append(nn.Conv2d(c_in, channels, 3, padding=1))
    return nn.Sequential(*enc), nn.Sequential(*dec)


def fit_score(train: list[np.ndarray], test: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Train the paper model on the uint8 views ``train`` and return the norm scores of ``test``."""
    torch.manual_seed(seed)
    channels, size = train[0].shape[1], train[0].shape[2]
    encoder, decoder = autoencoder(channels, size)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=LR, weight_decay=WEIGHT_DECAY)
    x_train = [torch.from_numpy(v).float() / 255.0 for v in train]
    n = len(x_train[0])
    encoder.train()
    decoder.train()
    for _ in range(EPOCHS):
        order = torch.randperm(n)
        for start in range(0, n, BATCH):
            idx = order[start : start + BATCH]
            if len(idx) < 2:
                continue
            latents, recon = [], torch.zeros(())
            for x in x_train:
                z = encoder(x[idx])
                latents.append(z.flatten(1))
                recon = recon + ((decoder(z) - x[idx]) ** 2).mean()
            phi = torch.cat(latents, dim=1)
            loss = (phi**2).sum(dim=1).mean() + recon
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    encoder.eval()
    x_test = [torch.from_numpy(v).float() / 255.0 for v in test]
    scores = []
    with torch.no_grad():
        for start in range(0, len(x_test[0]), BATCH):
            phi = torch.cat([encoder(x[start : start + BATCH]).flatten(1) for x in x_test], dim=1)
            scores.append(phi.norm(dim=1))
    return torch.cat(scores).numpy()


def run_protocol(normals: Sequence[str], cache_dir: str | None = None, seed: int = 0) -> dict[str, float]:
    """The COIL-20 protocol on ``normals``, data loading included: wall seconds and mean ROC AUC per model."""
    start = time.perf_counter()
    data = load_turntable(COIL, size=32, mode="L", cache_dir=cache_dir)
    rocs: dict[str, list[float]] = {model: [] for model in VIEWS}
    for normal in normals:
        task = one_class_split(data, normal=normal, train_fraction=0.66, seed=seed)
        y = (task.test.labels != normal).astype(int)
        for model, views in VIEWS.items():
            train, test = [task.train.views[v] for v in views], [task.test.views[v] for v in views]
            scores = fit_score(train, test, seed)
            rocs[model].append(float(roc_auc_score(y, scores)))
    out = {"wall": time.perf_counter() - start}
    out.update({model: float(np.mean(values)) for model, values in rocs.items()})
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Run the reference on the first ``--tasks`` COIL-20 classes and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="COIL-20 classes used as the normal class")
    args = parser.parse_args(argv)
    classes = load_turntable(COIL, size=32).classes[: args.tasks]
    print(run_protocol(list(classes)))


if __name__ == "__main__":
    main()
