"""The cards of a report: which samples are shown, and each as an HTML card of its views, maps and masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from mmocc.detectors.parts import fired_part
from mmocc.evaluation.html.images import (
    draw_outline,
    heat_overlay,
    mask_outline,
    outline_width,
    png_img,
    to_display,
)
from mmocc.evaluation.html.samples import PART_MEANING, ScoredSamples

if TYPE_CHECKING:
    from mmocc.data.dataset import MultiViewDataset
    from mmocc.data.inputs import ViewSpec
    from mmocc.detectors.multimodal import MultimodalOCC


@dataclass(frozen=True)
class CardContext:
    """What every card needs: the model's views, the scored samples and the scale of each view's maps."""

    specs: list[ViewSpec]
    scored: ScoredSamples
    ranges: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class Card:
    """One sample shown as a card: its row in the samples, images, anomaly maps and ground-truth masks.

    ``maps`` is empty for a model without maps; ``masks`` holds the bool
    ``(H, W)`` masks of the views where the sample has a non-empty one.
    """

    index: int
    images: dict[str, np.ndarray]
    maps: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]


def select_cards(
    scores: np.ndarray, threshold: float, top_k: int, n_near: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the samples shown as cards.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Anomaly scores (higher = more anomalous).
    threshold : float
        The detector's threshold; a sample is an anomaly when its score is above it.
    top_k : int
        How many of the highest-scoring anomalies to show.
    n_near : int
        How many of the normals nearest below the threshold to show.

    Returns
    -------
    top : numpy.ndarray of int
        Indices of at most ``top_k`` samples above the threshold, highest score first.
    near : numpy.ndarray of int
        Indices of at most ``n_near`` samples at or below the threshold, highest score first.

    Examples
    --------
    >>> import numpy as np
    >>> top, near = select_cards(np.array([0.1, 3.0, 0.9, 2.0, 0.5]), 1.0, top_k=5, n_near=2)
    >>> top.tolist(), near.tolist()
    ([1, 3], [2, 4])
    """
    order = np.argsort(-scores, kind="stable")
    above = scores[order] > threshold
    return order[above][:top_k], order[~above][:n_near]


def make_cards(clf: MultimodalOCC, chosen: MultiViewDataset, indices: np.ndarray) -> list[Card]:
    """Build the cards of the samples shown, with their anomaly maps and their masks where there are some.

    Parameters
    ----------
    clf : MultimodalOCC
        The fitted detector that gives the maps.
    chosen : MultiViewDataset
        The samples shown, with their views (and masks, where known), in the order of ``indices``.
    indices : numpy.ndarray of int
        The rows of ``chosen``'s samples in the report.

    Returns
    -------
    list of Card
        One card per sample of ``chosen``; a sample's empty masks are left out of its card.
    """
    maps: dict[str, np.ndarray] = {}
    if clf.has_anomaly_maps:
        maps = clf.anomaly_maps(chosen)
    return [
        Card(
            index,
            {view: array[i] for view, array in chosen.views.items()},
            {view: stack[i] for view, stack in maps.items()},
            {view: stack[i] for view, stack in chosen.masks.items() if stack[i].any()},
        )
        for i, index in enumerate(indices.tolist())
    ]


def map_ranges(cards: Sequence[Card]) -> dict[str, tuple[float, float]]:
    """Return per view the range of the anomaly maps shown: every overlay of a view shares one scale.

    Parameters
    ----------
    cards : sequence of Card
        The cards shown.

    Returns
    -------
    dict of str to (float, float)
        ``(min, max)`` of the maps per view; views without maps are left out.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for card in cards:
        for view, heat in card.maps.items():
            lo, hi = ranges.get(view, (np.inf, -np.inf))
            ranges[view] = (min(lo, float(heat.min())), max(hi, float(heat.max())))
    return ranges


def _scaled(heat: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """Scale a map to [0, 1] over its view's range."""
    lo, hi = span
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat, dtype=np.float64)


def _picture(ctx: CardContext, card: Card, spec: ViewSpec) -> str:
    """Show the image of one view of a card and its anomaly overlay, with the mask outlined, or a placeholder.

    The image, its map and its mask share the view's loaded resolution, so
    the outline is painted over both pixel for pixel before they are encoded.
    """
    if spec.kind != "image":
        return f'<div class="vector">vector view ({"×".join(map(str, spec.shape))})</div>'
    sample = str(ctx.scored.ids[card.index])
    pixels = to_display(np.asarray(card.images[spec.name]))
    outline, masked = None, ""
    if spec.name in card.masks:
        outline = mask_outline(card.masks[spec.name], outline_width(*pixels.shape[:2]))
        masked = ", mask outlined"
    shown = pixels if outline is None else draw_outline(pixels, outline)
    images = [png_img(shown, "thumb", f"{spec.name} of sample {sample}{masked}")]
    if spec.name in card.maps:
        overlay = heat_overlay(pixels, _scaled(card.maps[spec.name], ctx.ranges[spec.name]))
        shown = overlay if outline is None else draw_outline(overlay, outline)
        images.append(png_img(shown, "heat", f"anomaly map of {spec.name}, sample {sample}{masked}"))
    return f'<div class="pair">{"".join(images)}</div>'


def _figure(ctx: CardContext, card: Card, spec: ViewSpec) -> str:
    """One view of a card: the picture, the view's score and its source file."""
    caption = [f"<strong>{escape(spec.name)}</strong>"]
    if spec.name in ctx.scored.by_view:
        caption.append(f"score {ctx.scored.by_view[spec.name][card.index]:.4g}")
    if spec.name in ctx.scored.paths:
        path = escape(str(ctx.scored.paths[spec.name][card.index]))
        caption.append(f'<span class="path" title="{path}">{path}</span>')
    return f"<figure>{_picture(ctx, card, spec)}<figcaption>{'<br>'.join(caption)}</figcaption></figure>"


def _card_html(ctx: CardContext, card: Card, rank: int) -> str:
    """One card: rank, sample id, score and label above every view of the sample."""
    score = float(ctx.scored.total[card.index])
    kind = "anomaly" if score > ctx.scored.threshold else "normal"
    head = [
        f'<span class="rank">#{rank}</span>',
        f'<span class="sid">id {escape(str(ctx.scored.ids[card.index]))}</span>',
        f'<span class="score">score {score:.4g}</span>',
    ]
    if ctx.scored.labels is not None:
        head.append(f'<span class="label">label {escape(str(ctx.scored.labels[card.index]))}</span>')
    figures = "".join(_figure(ctx, card, spec) for spec in ctx.specs)
    return (
        f'<article class="card {kind}"><h3>{"".join(head)}</h3>{_fired_line(ctx.scored, card.index)}'
        f'<div class="views">{figures}</div></article>'
    )


def _fired_line(scored: ScoredSamples, index: int) -> str:
    """Say which part of ``score="combined"`` fired, with both part scores; empty without parts."""
    if not scored.parts:
        return ""
    fired = str(fired_part({name: scores[index : index + 1] for name, scores in scored.parts.items()})[0])
    shown = " · ".join(f"{escape(name)} {float(scores[index]):.4g}" for name, scores in scored.parts.items())
    meaning = escape(PART_MEANING.get(fired, fired))
    return f'<p class="fired">fired: <strong>{escape(fired)}</strong> ({meaning}) · {shown}</p>'



def cards_section(ctx: CardContext, cards: Sequence[Card], heading: str) -> str:
    """Lay out a titled section of cards, or a line saying there is none.

    Parameters
    ----------
    ctx : CardContext
        The model's views, the scored samples and the scale of the maps.
    cards : sequence of Card
        The cards of the section, in the order shown; ranked from 1.
    heading : str
        The section's title (escaped here).

    Returns
    -------
    str
        The ``<section>`` element.
    """
    if cards:
        content = "".join(_card_html(ctx, card, rank) for rank, card in enumerate(cards, start=1))
        body = f'<div class="cards">{content}</div>'
    else:
        body = '<p class="note">No sample.</p>'
    return f"<section><h2>{escape(heading)}</h2>{body}</section>"
