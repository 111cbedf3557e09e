"""The scoring measurements of ``speed.py``: scoring paths by image size, and other scoring settings.

*Before* rows score through the eval-mode model by patching
:func:`mmocc.model.inference.for_device` (:func:`scoring_path`); *after* rows
go through the default path. Each ``*_records`` function returns the records
of one section of SPEED.md (see ``render_speed.py``).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from bench_common import best_time, torch_threads
from torch.utils.flop_counter import FlopCounterMode

from mmocc import MultimodalOCC
from mmocc.model import inference
from mmocc.model.hyperparams import PAPER
from mmocc.model.nn import ImageDecoder, ImageEncoder, JointAutoencoder


def random_pairs(n: int, shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` random uint8 two-view pairs of one shape."""
    rng = np.random.default_rng(seed)
    return {v: rng.integers(0, 256, (n, *shape), dtype=np.uint8) for v in ("left", "right")}


@functools.cache
def paper_flops(size: int, channels: int = 3) -> tuple[int, int]:
    """Forward FLOPs (2 per multiply-add) of one image through the paper encoder and its decoder."""
    encoder = ImageEncoder((channels, size, size), PAPER.arch()).eval()
    decoder = ImageDecoder(encoder, channels, PAPER.arch()).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as enc:
        z = encoder(torch.zeros(1, channels, size, size))
    with torch.no_grad(), FlopCounterMode(display=False) as dec:
        decoder(z)
    return enc.get_total_flops(), dec.get_total_flops()


def plain(model: JointAutoencoder, device: torch.device) -> JointAutoencoder:
    """The scoring path before the speed work: the eval-mode model as trained."""
    return model


def folded(**options: Any) -> Callable[[JointAutoencoder, torch.device], JointAutoencoder]:
    """A scoring path through :func:`mmocc.model.inference.inference_model` with ``options``."""
    return lambda model, device: inference.inference_model(model, **options)


@contextlib.contextmanager
def scoring_path(build: Callable[..., JointAutoencoder] | None) -> Iterator[None]:
    """Score through ``build(model, device)`` instead of ``for_device`` (None keeps the default)."""
    saved = inference.for_device
    inference.for_device = build or saved
    try:
        yield
    finally:
        inference.for_device = saved


SCORING_PATHS = (
    ("before: eval-mode model", plain),
    ("BN folded", folded(channels_last=False, block_bytes=None)),
    ("BN folded + channels-last", folded(channels_last=True, block_bytes=None)),
    ("after: + micro-batches (default)", None),
)
"""Label and scoring path of the scoring rows; sizes other than 32 skip the BN-folded ones."""


@functools.cache
def _scoring_model(size: int, channels: int = 3) -> MultimodalOCC:
    return MultimodalOCC(preset="paper", epochs=1, random_state=0, device="cpu").fit(
        random_pairs(64, (channels, size, size))
    )


def score_rate(
    size: int, n: int, repeats: int, *, batch: int = 256, channels: int = 3, build: Any = None
) -> float:
    """Pairs/s of a paper-preset ``decision_function`` through the scoring path ``build``."""
    clf = _scoring_model(size, channels).set_params(score_batch_size=batch)
    X = random_pairs(n, (channels, size, size), seed=1)
    with scoring_path(build):
        return n / best_time(lambda: clf.decision_function(X), repeats)


def compile_trial(n: int) -> dict[str, Any]:
    """``torch.compile`` of the folded 32x32 encoder stack against the same loop in eager mode.

    Both run the stack alone on micro-batches of 64 channels-last images, so
    they compare with each other, not with ``decision_function``.
    """
    layers = inference.inference_model(_scoring_model(32).model_).encoder_of("left").layers
    parts = [p.contiguous(memory_format=torch.channels_last) for p in torch.rand(n, 3, 32, 32).split(64)]

    def loop(fn: Callable[[torch.Tensor], Any]) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for part in parts:
                    fn(part)

        return run

    eager = n / 2 / best_time(loop(layers), 3)
    try:
        compiled = torch.compile(layers)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(parts[0])
        compile_s = time.perf_counter() - start
        seconds = best_time(loop(compiled), 3)
    except Exception as exc:  # a missing compiler or an inductor failure is a result too
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    return {"compile_s": compile_s, "pairs_s": n / 2 / seconds, "eager_pairs_s": eager}


def scoring_records(score_pairs: dict[int, int], repeats: int, peak: float) -> list[dict[str, Any]]:
    """A ``scoring`` record per size and path: pairs/s, GFLOP/s (2 x encoder FLOPs per pair), share, speed-up.

    Parameters
    ----------
    score_pairs : dict of int to int
        Pairs scored per image size.
    repeats : int
        Timings per row (the best counts).
    peak : float
        The matmul limit in GFLOP/s.
    """
    records = []
    for size, n in score_pairs.items():
        flops, base = 2 * paper_flops(size)[0], None
        for name, build in SCORING_PATHS:
            if size != 32 and name.startswith("BN folded"):
                continue
            rate = score_rate(size, n, repeats, build=build)
            base, gflops = base or rate, rate * flops / 1e9
            records.append({"kind": "scoring", "size": size, "path": name, "pairs_per_s": rate,
                            "gflops": gflops, "share": gflops / peak, "speedup": rate / base})
    return records


def settings_records(n: int, repeats: int, threads: int, compile_images: int | None) -> list[dict[str, Any]]:
    """A ``setting`` record per other setting at 32x32: batch sizes, threads, grey views, autograd, compile.

    ``compile_images`` None skips the ``torch.compile`` trial.
    """
    def row(setting: str, pairs_per_s: float, **more: Any) -> dict[str, Any]:
        return {"kind": "setting", "setting": setting, **more, "pairs_per_s": pairs_per_s}

    out = [row("batch", score_rate(32, n, repeats, batch=b), batch=b) for b in (64, 1024, 4096)]
    out += [row("before_batch", score_rate(32, n, repeats, batch=b, build=plain), batch=b)
            for b in (64, 4096)]
    other = 1 if threads != 1 else 2
    with torch_threads(other):
        out.append(row("threads", score_rate(32, n, repeats), threads=other))
    out.append(row("grey", score_rate(32, n, repeats, channels=1)))
    out.append(row("before_grey", score_rate(32, n, repeats, channels=1, build=plain)))
    model = _scoring_model(32).model_.eval()
    xs = {k: torch.from_numpy(v) for k, v in random_pairs(256, (3, 32, 32), seed=2).items()}
    for setting, context in (("autograd", contextlib.nullcontext), ("no_grad", torch.no_grad),
                             ("inference_mode", torch.inference_mode)):

        def forward(context: Callable[[], Any] = context) -> None:
            with context():
                model(xs, decode=False)

        out.append(row(setting, 256 / best_time(forward, repeats), pairs=256))
    if compile_images is not None:
        trial = compile_trial(compile_images)
        if "error" in trial:
            out.append({"kind": "setting", "setting": "compile_failed", "error": trial["error"]})
        else:
            out.append(row("compile_eager", trial["eager_pairs_s"]))
            out.append(row("compiled", trial["pairs_s"], compile_s=trial["compile_s"]))
    return out
