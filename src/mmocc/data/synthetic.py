"""Procedural two-camera demo data: segmented 3-D bodies seen from above and from the side.

Each sample is one pose of one individual, a small animal built from
ellipsoids (head, body segments, three pairs of legs, antennae, two tail
filaments, optional dorsal spots) and rendered twice by orthographic ray
casting: ``"dorsal"`` looks down the z axis, ``"lateral"`` along the y axis,
like two perpendicular cameras. A class is a body plan; individuals vary in
size, proportions, limb angles and colour, and every pose in yaw, pitch, roll
and position. Some plans differ from the first one only in what one camera
sees (body height only from the side, body width and dorsal spots only from
above), so a detector that uses both views has an advantage.

The renderer (:mod:`mmocc.data.raycast`) is vectorised NumPy; parts are
painted back to front, and chunks of samples render in parallel threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.raycast import Camera, Ellipsoids, render, rotation_matrices

#: Names of the two views.
VIEW_NAMES = ("dorsal", "lateral")

# Body plans: overrides of _BASE_PLAN, one per class.
_BASE_PLAN = {
    "segments": 5,
    "width": 1.0,
    "height": 1.0,
    "hump": 0.0,
    "leg_length": 1.0,
    "leg_droop": 25.0,
    "tail_length": 1.0,
    "tail_rise": 0.0,
    "antenna_length": 1.0,
    "spots": 0.0,
    "tint": 0.0,
}
_PLANS: tuple[dict[str, float], ...] = (
    {},
    {"height": 1.6},  # seen only from the side
    {"width": 1.6},  # seen only from above
    {"spots": 1.0, "tail_rise": 35.0},  # spots from above, raised tail from the side
    {"hump": 0.5},  # seen only from the side
    {"segments": 4, "leg_length": 1.3},
    {"tail_length": 1.8, "antenna_length": 0.5},
    {"tint": 1.0, "width": 0.8},
)
#: Largest supported number of classes.
MAX_CLASSES = len(_PLANS)

# Part slots, the same for every body; unused slots are inactive.
_HEAD = 0
_SEGMENTS = slice(1, 7)
_LEG_SIDES = {1.0: slice(7, 10), -1.0: slice(10, 13)}  # three legs on the +y side, three on -y
_ANTENNAE = slice(13, 15)  # +y, -y
_TAILS = slice(15, 17)  # +y, -y
_SPOTS = slice(17, 20)
_N_PARTS = 20
_MAX_SEGMENTS = _SEGMENTS.stop - _SEGMENTS.start
_N_SPOTS = _SPOTS.stop - _SPOTS.start

_EXTENT = 0.95  # the image spans [-_EXTENT, _EXTENT] in world units
_BACKGROUND = np.array([0.86, 0.88, 0.90], dtype=np.float32)
_BODY_COLOUR = np.array([0.50, 0.35, 0.20])
_LIMB_COLOUR = np.array([0.30, 0.20, 0.12])
_SPOT_COLOUR = np.array([0.95, 0.85, 0.40])
_TINT = np.array([-0.10, 0.08, 0.12])
_VARIATION = {
    "shape": 0.08,  # log-normal sd of body proportions and limb lengths
    "colour": 0.02,  # sd of the body colour, per channel
    "limb_angle": 4.0,  # sd of limb angles, degrees
    "yaw": 5.0,  # pose rotation about the vertical, uniform in +-yaw degrees
    "tilt": 5.0,  # sd of pitch and roll, degrees
    "scale": 0.04,  # log-normal sd of the overall size
    "shift": 0.03,  # position, uniform in +-shift per axis
}
_CAMERAS = {  # columns along +x; dorsal rows along -y looking down, lateral rows along -z looking along +y
    "dorsal": Camera(np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, -1.0])),
    "lateral": Camera(np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), np.array([0, 1.0, 0])),
}
_NOISE = 0.012  # pixel noise, standard deviation on the [0, 1] scale
_CHUNK_PIXELS = 1 << 17  # samples x pixels rendered at once by one thread


class _Trunk(NamedTuple):
    """Per-individual measures of the body the limbs attach to."""

    x: np.ndarray  # (n, _MAX_SEGMENTS), segment centres along the body
    width: np.ndarray  # (n,)
    height: np.ndarray  # (n,)
    length: np.ndarray  # (n,), of one segment


_Jitter = Callable[[tuple[int, ...]], np.ndarray]


def _add_trunk(
    bodies: Ellipsoids, plans: dict[str, np.ndarray], rng: np.random.Generator, jitter: _Jitter
) -> _Trunk:
    """Add the head and the segments, tapering from the thorax backwards; a hump raises the middle ones."""
    n = len(bodies.active)
    width = 0.16 * plans["width"] * jitter(())
    height = 0.14 * plans["height"] * jitter(())
    length = 0.22 * jitter(())
    count = plans["segments"][:, None]
    index = np.arange(_MAX_SEGMENTS)
    taper = 1.0 - 0.35 * index / (count - 1)
    hump = 1.0 + plans["hump"][:, None] * np.sin(np.pi * (index + 0.5) / count)
    x = 0.33 - 0.85 * index * length[:, None]
    bodies.axes[:, _SEGMENTS] = np.stack(
        [
            np.broadcast_to(0.62 * length[:, None], x.shape),
            width[:, None] * taper,
            height[:, None] * taper * hump,
        ],
        -1,
    )
    bodies.centres[:, _SEGMENTS] = np.stack(
        [x, np.zeros_like(x), bodies.axes[:, _SEGMENTS, 2] - height[:, None]], -1
    )
    bodies.active[:, _SEGMENTS] = index < count
    colour = _BODY_COLOUR + plans["tint"][:, None] * _TINT + rng.normal(0.0, _VARIATION["colour"], (n, 3))
    bodies.colours[:, _SEGMENTS] = colour[:, None] * np.where(index % 2 == 0, 1.0, 0.85)[None, :, None]
    bodies.colours[:, _HEAD] = colour
    bodies.centres[:, _HEAD] = np.stack([0.33 + 0.8 * length, np.zeros(n), -0.2 * height], -1)
    bodies.axes[:, _HEAD] = np.stack([0.11 * jitter(()), 0.8 * width, 0.8 * height], -1)
    bodies.active[:, _HEAD] = True
    return _Trunk(x, width, height, length)


def _add_legs(
    bodies: Ellipsoids, plans: dict[str, np.ndarray], trunk: _Trunk, rng: np.random.Generator, jitter: _Jitter
) -> None:
    """Add three pairs of legs on the first three segments, swept forward, sideways and back."""
    n, angle_sd = len(bodies.active), _VARIATION["limb_angle"]
    droop = np.radians(plans["leg_droop"][:, None] + rng.normal(0.0, angle_sd, (n, 3)))
    sweep = np.radians(np.array([35.0, 0.0, -35.0]) + rng.normal(0.0, angle_sd, (n, 3)))
    leg_length = 0.42 * plans["leg_length"][:, None] * jitter((3,))
    for side, slot in _LEG_SIDES.items():
        direction = np.stack(
            [np.sin(sweep) * np.cos(droop), side * np.cos(sweep) * np.cos(droop), -np.sin(droop)], -1
        )
        root = np.stack(
            np.broadcast_arrays(
                trunk.x[:, :3], side * 0.5 * trunk.width[:, None], -0.4 * trunk.height[:, None]
            ),
            -1,
        )
        bodies.set_limbs(slot, root, direction, leg_length, 0.028)


def _add_filaments(
    bodies: Ellipsoids, plans: dict[str, np.ndarray], trunk: _Trunk, rng: np.random.Generator, jitter: _Jitter
) -> None:
    """Add antennae from the front of the head and tail filaments from the last segment."""
    n, angle_sd = len(bodies.active), _VARIATION["limb_angle"]
    side = np.array([1.0, -1.0])
    spread = np.radians(30.0 + rng.normal(0.0, angle_sd, (n, 2)))
    direction = np.stack([np.cos(spread), side * np.sin(spread), np.full((n, 2), 0.25)], -1)
    root = (bodies.centres[:, _HEAD] + [0.08, 0.0, 0.03])[:, None]
    bodies.set_limbs(
        _ANTENNAE, root, direction, 0.30 * plans["antenna_length"][:, None] * jitter((2,)), 0.016
    )
    spread = np.radians(18.0 + rng.normal(0.0, angle_sd, (n, 2)))
    rise = np.radians(plans["tail_rise"][:, None] + rng.normal(0.0, angle_sd, (n, 2)))
    direction = np.stack(
        [-np.cos(spread) * np.cos(rise), side * np.sin(spread) * np.cos(rise), np.sin(rise)], -1
    )
    last = trunk.x[np.arange(n), plans["segments"] - 1] - 0.5 * trunk.length
    root = np.stack([last, np.zeros(n), -0.3 * trunk.height], -1)[:, None]
    bodies.set_limbs(_TAILS, root, direction, 0.35 * plans["tail_length"][:, None] * jitter((2,)), 0.02)


def _add_spots(bodies: Ellipsoids, plans: dict[str, np.ndarray]) -> None:
    """Add dorsal spots: flat patches inside the back of segments 2..4, painted over the body from above."""
    backs = slice(_SEGMENTS.start + 1, _SEGMENTS.start + 1 + _N_SPOTS)
    seg_axes = bodies.axes[:, backs]
    bodies.centres[:, _SPOTS] = bodies.centres[:, backs] + np.stack(
        [np.zeros_like(seg_axes[..., 2]), np.zeros_like(seg_axes[..., 2]), 0.62 * seg_axes[..., 2]], -1
    )
    bodies.axes[:, _SPOTS] = np.stack(
        [0.42 * seg_axes[..., 1], 0.6 * seg_axes[..., 1], 0.34 * seg_axes[..., 2]], -1
    )
    bodies.colours[:, _SPOTS] = _SPOT_COLOUR
    bodies.active[:, _SPOTS] = (plans["spots"][:, None] > 0) & bodies.active[:, backs]


def _build_bodies(plans: dict[str, np.ndarray], rng: np.random.Generator) -> Ellipsoids:
    """Ellipsoids of individuals in body coordinates: x towards the head, z up.

    The random draws happen in a fixed order (trunk, legs, antennae, tails),
    so that a seed always gives the same bodies.
    """
    n = len(plans["segments"])

    def jitter(shape: tuple[int, ...]) -> np.ndarray:
        """Log-normal factors around 1, one per individual (and entry of ``shape``)."""
        return np.exp(rng.normal(0.0, _VARIATION["shape"], (n, *shape)))

    bodies = Ellipsoids.blank(n, _N_PARTS, _LIMB_COLOUR)
    trunk = _add_trunk(bodies, plans, rng, jitter)
    _add_legs(bodies, plans, trunk, rng, jitter)
    _add_filaments(bodies, plans, trunk, rng, jitter)
    _add_spots(bodies, plans)
    return bodies


def _draw_order(view: str) -> list[int]:
    """Part slots back to front for a view (painter's algorithm)."""
    legs = {side: list(range(slot.start, slot.stop)) for side, slot in _LEG_SIDES.items()}
    antenna = {1.0: [_ANTENNAE.start], -1.0: [_ANTENNAE.start + 1]}
    tail = {1.0: [_TAILS.start], -1.0: [_TAILS.start + 1]}
    spots = list(range(_SPOTS.start, _SPOTS.stop))
    body = list(range(_SEGMENTS.stop - 1, _SEGMENTS.start - 1, -1)) + [_HEAD]
    if view == "dorsal":  # looking down: limbs hang below the body, spots are painted on its back
        return legs[1.0] + legs[-1.0] + tail[1.0] + tail[-1.0] + antenna[1.0] + antenna[-1.0] + body + spots
    # looking along +y: the +y side is far, the -y side near; the body hides the spots
    return legs[1.0] + tail[1.0] + antenna[1.0] + spots + body + legs[-1.0] + tail[-1.0] + antenna[-1.0]


def _render_chunk(bodies: Ellipsoids, size: int, seed: int) -> dict[str, np.ndarray]:
    """Render both views of some bodies, add pixel noise and quantise to uint8."""
    rng = np.random.default_rng(seed)
    out = {}
    for view in VIEW_NAMES:
        image = render(bodies, _CAMERAS[view], _draw_order(view), size, _EXTENT, _BACKGROUND)
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(_NOISE)
        out[view] = np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)
    return out


def _pose(bodies: Ellipsoids, yaw: np.ndarray, rng: np.random.Generator) -> Ellipsoids:
    """Place bodies in the world: ``yaw`` (degrees), random pitch, roll, scale and shift."""
    n = len(yaw)
    tilt = np.radians(rng.normal(0.0, _VARIATION["tilt"], (2, n)))
    rotation = rotation_matrices(np.radians(yaw), tilt[0], tilt[1])
    scale = np.exp(rng.normal(0.0, _VARIATION["scale"], n))[:, None, None]
    shift = rng.uniform(-_VARIATION["shift"], _VARIATION["shift"], (n, 1, 3))
    return replace(
        bodies,
        centres=np.einsum("nij,nej->nei", rotation, bodies.centres) * scale + shift,
        rotations=rotation[:, None] @ bodies.rotations,
        axes=bodies.axes * scale,
    )


def make_synthetic(
    n_per_class: int = 100,
    n_classes: int = 4,
    size: int = 32,
    seed: int = 0,
    poses_per_individual: int = 1,
) -> MultiViewDataset:
    """Generate two-view images of procedural segmented animals.

    Parameters
    ----------
    n_per_class : int, default 100
        Samples (view pairs) per class.
    n_classes : int, default 4
        Number of body plans, 2 to :data:`MAX_CLASSES`. Class 1 differs from
        class 0 only in body height (seen from the side), class 2 only in
        body width (seen from above), class 3 in dorsal spots and a raised
        tail, class 4 in a humped back (side), the others in both views.
    size : int, default 32
        Images are ``size`` x ``size``.
    seed : int, default 0
        Seed of the generator; the same seed gives the same data.
    poses_per_individual : int, default 1
        Samples of each individual, in different poses; it must divide
        ``n_per_class``. Above 1, group splits matter.

    Returns
    -------
    MultiViewDataset
        Views ``"dorsal"`` and ``"lateral"``, uint8 ``(n, 3, size, size)``;
        labels = class (int, ``0 .. n_classes - 1``); groups = individual
        (int); metadata ``"yaw"`` (pose rotation about the vertical, degrees).

    Raises
    ------
    ValueError
        For a parameter out of range.

    Notes
    -----
    The classes are learnable but overlap. With 250 samples per class and
    4 classes, a 5-nearest-neighbour detector on raw pixels (66% of one
    class to train) reaches a mean one-vs-rest ROC AUC of about 0.88 with
    both views, 0.78 with the dorsal view alone and 0.83 with the lateral
    view alone (size 32 or 64).

    Examples
    --------
    >>> ds = make_synthetic(n_per_class=10, n_classes=2, size=16)
    >>> len(ds), ds.view_names, ds.views["dorsal"].shape
    (20, ['dorsal', 'lateral'], (20, 3, 16, 16))
    """
    limits = {"n_per_class": (n_per_class, 1), "n_classes": (n_classes, 2), "size": (size, 4)}
    limits["poses_per_individual"] = (poses_per_individual, 1)
    for name, (value, low) in limits.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_classes > MAX_CLASSES:
        raise ValueError(f"n_classes must be at most {MAX_CLASSES} (one per body plan), got {n_classes}")
    if n_per_class % poses_per_individual:
        raise ValueError(f"poses_per_individual={poses_per_individual} must divide n_per_class={n_per_class}")
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(n_classes), n_per_class // poses_per_individual)  # one per individual
    plans = {key: np.array([{**_BASE_PLAN, **_PLANS[c]}[key] for c in classes]) for key in _BASE_PLAN}
    bodies = _build_bodies(plans, rng).map(lambda array: np.repeat(array, poses_per_individual, axis=0))
    n = n_classes * n_per_class
    yaw = rng.uniform(-_VARIATION["yaw"], _VARIATION["yaw"], n)
    world = _pose(bodies, yaw, rng)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    starts = range(0, n, chunk)
    seeds = rng.integers(0, 2**63, size=len(starts))

    def render(start: int, chunk_seed: int) -> dict[str, np.ndarray]:
        return _render_chunk(world.map(lambda array: array[start : start + chunk]), size, chunk_seed)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        chunks = list(pool.map(render, starts, seeds))
    return MultiViewDataset(
        {view: np.concatenate([images[view] for images in chunks]) for view in VIEW_NAMES},
        labels=np.repeat(classes, poses_per_individual),
        groups=np.repeat(np.arange(len(classes)), poses_per_individual),
        metadata={"yaw": yaw.astype(np.float32)},
    )
