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

The renderer is vectorised NumPy: for an ellipsoid and an orthographic ray,
the hit test and the shading are quadratic in the pixel coordinates, a few
array operations per pixel and part; parts are painted back to front, and
chunks of samples render in parallel threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace

import numpy as np

from mmocc.data.dataset import MultiViewDataset

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
_PLANS = (
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
_NOISE = 0.012  # pixel noise, standard deviation on the [0, 1] scale
_CHUNK_PIXELS = 1 << 17  # samples x pixels rendered at once by one thread


def _rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Rotation matrices ``Rz(yaw) Ry(pitch) Rx(roll)`` from angles in radians, shape (..., 3, 3)."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    return np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], axis=-1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], axis=-1),
            np.stack([-sp, cp * sr, cp * cr], axis=-1),
        ],
        axis=-2,
    )


def _frame_along(direction: np.ndarray) -> np.ndarray:
    """Rotation matrices whose first column is the unit vector ``direction`` (..., 3)."""
    helper = np.where(np.abs(direction[..., 2:3]) < 0.9, [0.0, 0.0, 1.0], [0.0, 1.0, 0.0])
    second = np.cross(helper, direction)
    second /= np.linalg.norm(second, axis=-1, keepdims=True)
    return np.stack([direction, second, np.cross(direction, second)], axis=-1)


@dataclass
class _Bodies:
    """Ellipsoid parts of ``n`` bodies; unused part slots are inactive."""

    centres: np.ndarray  # (n, parts, 3)
    rotations: np.ndarray  # (n, parts, 3, 3), the part's local axes as columns
    axes: np.ndarray  # (n, parts, 3), semi-axes along the local axes
    colours: np.ndarray  # (n, parts, 3), RGB in [0, 1]
    active: np.ndarray  # (n, parts), bool

    @classmethod
    def blank(cls, n: int) -> _Bodies:
        """Bodies with every slot inactive."""
        return cls(
            centres=np.zeros((n, _N_PARTS, 3)),
            rotations=np.broadcast_to(np.eye(3), (n, _N_PARTS, 3, 3)).copy(),
            axes=np.ones((n, _N_PARTS, 3)),
            colours=np.broadcast_to(_LIMB_COLOUR, (n, _N_PARTS, 3)).copy(),
            active=np.zeros((n, _N_PARTS), dtype=bool),
        )

    def map(self, function: Callable[[np.ndarray], np.ndarray]) -> _Bodies:
        """Apply ``function`` to every array (for example to select or repeat bodies)."""
        return _Bodies(**{f.name: function(getattr(self, f.name)) for f in fields(self)})

    def set_limbs(
        self, slot: slice, root: np.ndarray, direction: np.ndarray, length: np.ndarray, radius: float
    ) -> None:
        """Make thin ellipsoids from ``root`` along ``direction`` (n, k, 3), ``length`` (n, k) long."""
        direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
        self.centres[:, slot] = root + direction * (length[..., None] / 2)
        self.rotations[:, slot] = _frame_along(direction)
        self.axes[:, slot] = np.stack(
            [length / 2, np.full_like(length, radius), np.full_like(length, radius)], -1
        )
        self.active[:, slot] = True


def _build_bodies(plans: dict[str, np.ndarray], rng: np.random.Generator) -> _Bodies:
    """Ellipsoids of individuals in body coordinates: x towards the head, z up."""
    n = len(plans["segments"])
    shape_sd, angle_sd = _VARIATION["shape"], _VARIATION["limb_angle"]

    def jitter(shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.exp(rng.normal(0.0, shape_sd, (n, *shape)))

    bodies = _Bodies.blank(n)
    width = 0.16 * plans["width"] * jitter()
    height = 0.14 * plans["height"] * jitter()
    length = 0.22 * jitter()  # of one segment
    count = plans["segments"][:, None]
    # segments from the thorax backwards, tapering; a hump raises the middle ones
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
    bodies.axes[:, _HEAD] = np.stack([0.11 * jitter(), 0.8 * width, 0.8 * height], -1)
    bodies.active[:, _HEAD] = True
    # three pairs of legs on the first three segments, swept forward, sideways and back
    droop = np.radians(plans["leg_droop"][:, None] + rng.normal(0.0, angle_sd, (n, 3)))
    sweep = np.radians(np.array([35.0, 0.0, -35.0]) + rng.normal(0.0, angle_sd, (n, 3)))
    leg_length = 0.42 * plans["leg_length"][:, None] * jitter((3,))
    for side, slot in ((1.0, _LEG_SIDES[1.0]), (-1.0, _LEG_SIDES[-1.0])):
        direction = np.stack(
            [np.sin(sweep) * np.cos(droop), side * np.cos(sweep) * np.cos(droop), -np.sin(droop)], -1
        )
        root = np.stack(
            np.broadcast_arrays(x[:, :3], side * 0.5 * width[:, None], -0.4 * height[:, None]), -1
        )
        bodies.set_limbs(slot, root, direction, leg_length, 0.028)
    # antennae from the front of the head, tail filaments from the last segment
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
    last = x[np.arange(n), plans["segments"] - 1] - 0.5 * length
    root = np.stack([last, np.zeros(n), -0.3 * height], -1)[:, None]
    bodies.set_limbs(_TAILS, root, direction, 0.35 * plans["tail_length"][:, None] * jitter((2,)), 0.02)
    # dorsal spots: flat patches inside the back of segments 2..4, painted over the body from above
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


def _render(bodies: _Bodies, view: str, size: int) -> np.ndarray:
    """Ray-cast the bodies orthographically into float RGB images (n, 3, size, size) in [0, 1].

    For the ray through pixel (u, v), ``q = M (p - c)`` maps a point ``p`` of
    the ray into the coordinates where the ellipsoid is the unit sphere
    (``M = diag(1/a) R^T``). The part of ``q`` perpendicular to the ray is
    affine in (u, v), so ``h = 1 - |q_perp|^2`` is a quadratic in (u, v): a
    row term, a column term and a cross term, a few operations per pixel and
    part. ``h > 0`` inside the silhouette, and ``sqrt(h)`` is the cosine
    between the ray and the sphere's normal, used for shading. Parts are
    painted back to front in a fixed order per view, which is exact for the
    small pitch and roll of the poses.
    """
    if view == "dorsal":  # columns along +x, rows along -y, looking down
        e1, e2, d = np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, -1.0])
    else:  # columns along +x, rows along -z, looking along +y
        e1, e2, d = np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), np.array([0, 1.0, 0])
    m_matrix = np.swapaxes(bodies.rotations, -1, -2) / bodies.axes[..., :, None]
    ray = m_matrix @ d
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)

    def perp(vector: np.ndarray) -> np.ndarray:
        return vector - np.sum(vector * ray, axis=-1, keepdims=True) * ray

    def dot(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.sum(p * q, axis=-1)[..., None]

    a1, a2 = perp(m_matrix @ e1), perp(m_matrix @ e2)
    a3 = perp(-np.einsum("neij,nej->nei", m_matrix, bodies.centres))
    grid = (np.arange(size) + 0.5) / size * 2 * _EXTENT - _EXTENT
    active = bodies.active[..., None]  # inactive parts get h = -1 everywhere
    h_col = np.where(active, dot(a1, a1) * grid**2 + 2 * dot(a1, a3) * grid, 0.0).astype(np.float32)
    h_row = np.where(active, 1.0 - dot(a2, a2) * grid**2 - 2 * dot(a2, a3) * grid - dot(a3, a3), -1.0)
    h_row = h_row.astype(np.float32)
    cross = np.where(active, 2 * dot(a1, a2), 0.0).astype(np.float32)[..., None]
    uv = np.outer(grid, grid).astype(np.float32)
    n = len(h_row)
    # code = slot + h of the frontmost part: which part and its shading, in one buffer
    code = np.full((n, size, size), -1.0, dtype=np.float32)
    for slot in _draw_order(view):
        shifted = (h_row[:, slot, :, None] + np.float32(slot)) - h_col[:, slot, None, :]
        shifted -= cross[:, slot] * uv
        np.copyto(code, shifted, where=shifted > slot)
    part = np.ceil(code).astype(np.intp) - 1
    shade = np.float32(0.45) + np.float32(0.55) * np.sqrt(np.clip(code - part, 0, 1))
    colour = np.take_along_axis(bodies.colours, np.maximum(part, 0).reshape(n, -1, 1), axis=1)
    image = np.where((part >= 0)[..., None], colour.reshape(n, size, size, 3) * shade[..., None], _BACKGROUND)
    return np.moveaxis(image, -1, 1)


def _render_chunk(bodies: _Bodies, size: int, seed: int) -> dict[str, np.ndarray]:
    """Render both views of some bodies, add pixel noise and quantise to uint8."""
    rng = np.random.default_rng(seed)
    out = {}
    for view in VIEW_NAMES:
        image = _render(bodies, view, size)
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(_NOISE)
        out[view] = np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)
    return out


def _pose(bodies: _Bodies, yaw: np.ndarray, rng: np.random.Generator) -> _Bodies:
    """Place bodies in the world: ``yaw`` (degrees), random pitch, roll, scale and shift."""
    n = len(yaw)
    tilt = np.radians(rng.normal(0.0, _VARIATION["tilt"], (2, n)))
    rotation = _rotation(np.radians(yaw), tilt[0], tilt[1])
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
