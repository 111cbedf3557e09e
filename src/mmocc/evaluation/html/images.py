"""Pixels of a report's cards: display conversion, heat-map overlay, mask outlines, PNG ``<img>`` encoding."""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np
from PIL import Image
from scipy import ndimage

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

OUTLINE_RGB = (0, 229, 255)
"""Colour of ground-truth mask outlines: cyan, which the heat map's black-purple-red-yellow never reaches."""


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


def outline_width(height: int, width: int) -> int:
    """Return how many image pixels wide an outline must be to stay one displayed pixel wide.

    Parameters
    ----------
    height, width : int
        The image's size at the view's loaded resolution.

    Returns
    -------
    int
        1 for images shown at their size or scaled up (longer side up to
        :data:`THUMB_PX`); for larger images, which :func:`png_img` scales
        down, the scale factor rounded up.

    Examples
    --------
    >>> outline_width(64, 64), outline_width(256, 200), outline_width(300, 100)
    (1, 2, 3)
    """
    return max(1, -(-max(height, width) // THUMB_PX))


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Return the boundary pixels of a mask: the inner contour that a binary erosion takes away.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (H, W)
        A ground-truth mask (True = defect).
    width : int, default 1
        Width of the contour in pixels: the mask pixels at most ``width``
        4-neighbour steps from a pixel outside the mask, beyond the image's
        edge included (1 = every mask pixel with a 4-neighbour outside it).

    Returns
    -------
    numpy.ndarray of bool, shape (H, W)
        The contour; all False for an empty mask.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((5, 5), bool)
    >>> mask[1:4, 1:4] = True
    >>> mask_outline(mask).astype(int).tolist()[1:4]
    [[0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0]]
    """
    inside = np.asarray(mask, dtype=bool)
    return inside & ~ndimage.binary_erosion(inside, iterations=width, border_value=0)


def draw_outline(pixels: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Paint an outline over an image, in :data:`OUTLINE_RGB`.

    Parameters
    ----------
    pixels : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The image or its heat overlay, at the mask's resolution.
    outline : numpy.ndarray of bool, shape (H, W)
        The pixels to paint, as :func:`mask_outline` returns them.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        A copy of the image with the outline's pixels painted, every other pixel unchanged.

    Raises
    ------
    ValueError
        When the outline and the image differ in size: they would not align.
    """
    if outline.shape != pixels.shape[:2]:
        raise ValueError(f"a mask outline of shape {outline.shape} does not fit an image of {pixels.shape}")
    rgb = np.array(pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2), dtype=np.uint8)
    rgb[outline] = OUTLINE_RGB
    return rgb
