"""Pixels of a report's cards: display conversion, heat-map overlay and PNG ``<img>`` encoding."""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np
from PIL import Image

THUMB_PX = 128
"""Displayed size (px) of the longer side of a card image; small images are scaled up pixelated."""

_HEAT_ALPHA = 0.65
_HEAT_ANCHORS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64
)
"""Colours of the heat map from low to high (close to matplotlib's inferno)."""

_HEAT_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_HEAT_ANCHORS)), c) for c in _HEAT_ANCHORS.T],
    axis=1,
)
"""The 256-entry colour lookup of the heat map, (256, 3) in [0, 255]."""


def to_display(image: np.ndarray) -> np.ndarray:
    """Turn one image of a view into displayable uint8 pixels.

    Parameters
    ----------
    image : numpy.ndarray of shape (C, H, W) or (H, W)
        One sample of an image view. uint8 is shown as is, other integers
        clipped to [0, 255], floats min-max scaled (as the model scales them).
        One or two channels show the first as grey, three or more the first
        three as RGB.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        Grey or RGB pixels.

    Examples
    --------
    >>> import numpy as np
    >>> to_display(np.zeros((3, 4, 5), np.uint8)).shape
    (4, 5, 3)
    >>> to_display(np.array([[0.0, 0.5, 1.0]])).tolist()
    [[0, 128, 255]]
    """
    planes = image if image.ndim == 3 else image[None]
    pixels = planes[0] if planes.shape[0] < 3 else np.moveaxis(planes[:3], 0, -1)
    if pixels.dtype == np.uint8:
        return pixels
    if not np.issubdtype(pixels.dtype, np.floating):
        return np.clip(pixels, 0, 255).astype(np.uint8)
    lo, hi = float(pixels.min()), float(pixels.max())
    scaled = (pixels - lo) / (hi - lo) if hi > lo else np.zeros_like(pixels, dtype=np.float64)
    return np.round(scaled * 255).astype(np.uint8)


def heat_overlay(pixels: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Blend a heat map over an image.

    Parameters
    ----------
    pixels : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The image, as :func:`to_display` returns it.
    heat : numpy.ndarray of shape (H, W)
        Values in [0, 1] (clipped): 0 leaves the pixel, 1 paints it 65% with
        the hottest colour.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        The blended RGB image.

    Examples
    --------
    >>> import numpy as np
    >>> heat_overlay(np.zeros((2, 2), np.uint8), np.array([[0.0, 0.0], [0.0, 1.0]]))[:, :, 1].tolist()
    [[0, 0], [0, 166]]
    """
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    level = np.clip(heat, 0.0, 1.0)
    colour = _HEAT_LUT[np.round(level * 255).astype(np.intp)]
    alpha = (_HEAT_ALPHA * level)[:, :, None]
    return np.round(rgb * (1 - alpha) + colour * alpha).astype(np.uint8)


def _display_size(height: int, width: int) -> tuple[int, int]:
    """Return the displayed (height, width) of an image: longer side THUMB_PX, aspect kept."""
    scale = THUMB_PX / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def png_img(pixels: np.ndarray, css_class: str, alt: str) -> str:
    """Return an ``<img>`` with the pixels as PNG data URI; large images are downscaled first.

    Parameters
    ----------
    pixels : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        Grey or RGB pixels, as :func:`to_display` or :func:`heat_overlay` return them.
    css_class : str
        Added to the image's ``px`` class.
    alt : str
        The alternative text (escaped here).

    Returns
    -------
    str
        The ``<img>`` element, displayed with its longer side :data:`THUMB_PX` pixels.
    """
    height, width = _display_size(*pixels.shape[:2])
    image = Image.fromarray(pixels)
    if pixels.shape[0] > height or pixels.shape[1] > width:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="px {css_class}" src="{uri}" width="{width}" height="{height}" alt="{escape(alt)}">'
