"""Orthographic ray casting of ellipsoids, the renderer behind :func:`mmocc.data.synthetic.make_synthetic`.

A batch of ``n`` scenes is an :class:`Ellipsoids`: the same number of part
slots per scene, each an ellipsoid with a centre, local axes, semi-axes, a
colour and an on/off flag. :func:`render` paints them into RGB images as seen
by an orthographic :class:`Camera`, back to front in a given slot order
(painter's algorithm).

The renderer is vectorised NumPy: for an ellipsoid and an orthographic ray,
the hit test and the shading are quadratic in the pixel coordinates, a few
array operations per pixel and part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np


def rotation_matrices(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Return the rotations ``Rz(yaw) Ry(pitch) Rx(roll)``.

    Parameters
    ----------
    yaw, pitch, roll : numpy.ndarray
        Angles in radians, all of the same shape ``(...)``.

    Returns
    -------
    numpy.ndarray of shape (..., 3, 3)
        The rotation matrices.

    Examples
    --------
    >>> rotation_matrices(np.zeros(2), np.zeros(2), np.zeros(2)).shape
    (2, 3, 3)
    """
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    return np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], axis=-1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], axis=-1),
            np.stack([-sp, cp * sr, cp * cr], axis=-1),
        ],
        axis=-2,
    )


def frame_along(direction: np.ndarray) -> np.ndarray:
    """Return rotations whose first column is ``direction``.

    Parameters
    ----------
    direction : numpy.ndarray of shape (..., 3)
        Unit vectors.

    Returns
    -------
    numpy.ndarray of shape (..., 3, 3)
        Orthonormal frames: ``direction`` and two perpendicular unit vectors,
        as columns.
    """
    helper = np.where(np.abs(direction[..., 2:3]) < 0.9, [0.0, 0.0, 1.0], [0.0, 1.0, 0.0])
    second = np.cross(helper, direction)
    second /= np.linalg.norm(second, axis=-1, keepdims=True)
    return np.stack([direction, second, np.cross(direction, second)], axis=-1)


@dataclass
class Ellipsoids:
    """Ellipsoid parts of ``n`` scenes; inactive slots are not drawn.

    Attributes
    ----------
    centres : numpy.ndarray of shape (n, parts, 3)
        Centre of each part.
    rotations : numpy.ndarray of shape (n, parts, 3, 3)
        The part's local axes, as columns.
    axes : numpy.ndarray of shape (n, parts, 3)
        Semi-axes along the local axes.
    colours : numpy.ndarray of shape (n, parts, 3)
        RGB in [0, 1].
    active : numpy.ndarray of bool, shape (n, parts)
        Which slots are drawn.
    """

    centres: np.ndarray
    rotations: np.ndarray
    axes: np.ndarray
    colours: np.ndarray
    active: np.ndarray

    @classmethod
    def blank(cls, n: int, parts: int, colour: np.ndarray) -> Ellipsoids:
        """Return scenes whose slots are all inactive unit spheres at the origin.

        Parameters
        ----------
        n : int
            Number of scenes.
        parts : int
            Part slots per scene.
        colour : numpy.ndarray of shape (3,)
            Initial colour of every part.

        Returns
        -------
        Ellipsoids
            The blank scenes.
        """
        return cls(
            centres=np.zeros((n, parts, 3)),
            rotations=np.broadcast_to(np.eye(3), (n, parts, 3, 3)).copy(),
            axes=np.ones((n, parts, 3)),
            colours=np.broadcast_to(colour, (n, parts, 3)).copy(),
            active=np.zeros((n, parts), dtype=bool),
        )

    def map(self, function: Callable[[np.ndarray], np.ndarray]) -> Ellipsoids:
        """Apply ``function`` to every array, for example to select or repeat scenes.

        Parameters
        ----------
        function : callable
            Maps an array with scenes along the first axis to another one.

        Returns
        -------
        Ellipsoids
            The new scenes.
        """
        return Ellipsoids(**{f.name: function(getattr(self, f.name)) for f in fields(self)})

    def set_limbs(
        self, slot: slice, root: np.ndarray, direction: np.ndarray, length: np.ndarray, radius: float
    ) -> None:
        """Make the parts in ``slot`` thin ellipsoids reaching from ``root`` along ``direction``.

        Parameters
        ----------
        slot : slice
            ``k`` part slots.
        root : numpy.ndarray, broadcastable to (n, k, 3)
            Where each limb starts.
        direction : numpy.ndarray of shape (n, k, 3)
            Where each limb points (normalised here).
        length : numpy.ndarray of shape (n, k)
            Length of each limb.
        radius : float
            Semi-axis across the limb.
        """
        direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
        self.centres[:, slot] = root + direction * (length[..., None] / 2)
        self.rotations[:, slot] = frame_along(direction)
        self.axes[:, slot] = np.stack(
            [length / 2, np.full_like(length, radius), np.full_like(length, radius)], -1
        )
        self.active[:, slot] = True


@dataclass(frozen=True)
class Camera:
    """An orthographic camera, as three world directions.

    Attributes
    ----------
    right : numpy.ndarray of shape (3,)
        Direction of increasing column.
    down : numpy.ndarray of shape (3,)
        Direction of increasing row.
    forward : numpy.ndarray of shape (3,)
        Direction of the rays.
    """

    right: np.ndarray
    down: np.ndarray
    forward: np.ndarray


def render(
    scenes: Ellipsoids,
    camera: Camera,
    order: Sequence[int],
    size: int,
    extent: float,
    background: np.ndarray,
) -> np.ndarray:
    """Ray-cast ellipsoids orthographically into float RGB images.

    For the ray through pixel (u, v), ``q = M (p - c)`` maps a point ``p`` of
    the ray into the coordinates where the ellipsoid is the unit sphere
    (``M = diag(1/a) R^T``). The part of ``q`` perpendicular to the ray is
    affine in (u, v), so ``h = 1 - |q_perp|^2`` is a quadratic in (u, v): a
    row term, a column term and a cross term. ``h > 0`` inside the
    silhouette, and ``sqrt(h)`` is the cosine between the ray and the
    sphere's normal, used for shading. Painting back to front in a fixed
    order is exact as long as that order does not depend on the pose.

    Parameters
    ----------
    scenes : Ellipsoids
        The parts of ``n`` scenes.
    camera : Camera
        The viewing directions.
    order : sequence of int
        Part slots, back to front.
    size : int
        Images are ``size`` x ``size`` pixels.
    extent : float
        The image spans ``[-extent, extent]`` in world units on both axes.
    background : numpy.ndarray of shape (3,)
        RGB of pixels no part covers.

    Returns
    -------
    numpy.ndarray of shape (n, 3, size, size)
        The images, in [0, 1].
    """
    m_matrix = np.swapaxes(scenes.rotations, -1, -2) / scenes.axes[..., :, None]
    ray = m_matrix @ camera.forward
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)

    def perp(vector: np.ndarray) -> np.ndarray:
        return vector - np.sum(vector * ray, axis=-1, keepdims=True) * ray

    def dot(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.sum(p * q, axis=-1)[..., None]

    a1, a2 = perp(m_matrix @ camera.right), perp(m_matrix @ camera.down)
    a3 = perp(-np.einsum("neij,nej->nei", m_matrix, scenes.centres))
    grid = (np.arange(size) + 0.5) / size * 2 * extent - extent
    active = scenes.active[..., None]  # inactive parts get h = -1 everywhere
    h_col = np.where(active, dot(a1, a1) * grid**2 + 2 * dot(a1, a3) * grid, 0.0).astype(np.float32)
    h_row = np.where(active, 1.0 - dot(a2, a2) * grid**2 - 2 * dot(a2, a3) * grid - dot(a3, a3), -1.0)
    h_row = h_row.astype(np.float32)
    cross = np.where(active, 2 * dot(a1, a2), 0.0).astype(np.float32)[..., None]
    uv = np.outer(grid, grid).astype(np.float32)
    n = len(h_row)
    # code = slot + h of the frontmost part: which part and its shading, in one buffer
    code = np.full((n, size, size), -1.0, dtype=np.float32)
    for slot in order:
        shifted = (h_row[:, slot, :, None] + np.float32(slot)) - h_col[:, slot, None, :]
        shifted -= cross[:, slot] * uv
        np.copyto(code, shifted, where=shifted > slot)
    part = np.ceil(code).astype(np.intp) - 1
    shade = np.float32(0.45) + np.float32(0.55) * np.sqrt(np.clip(code - part, 0, 1))
    colour = np.take_along_axis(scenes.colours, np.maximum(part, 0).reshape(n, -1, 1), axis=1)
    image = np.where((part >= 0)[..., None], colour.reshape(n, size, size, 3) * shade[..., None], background)
    return np.moveaxis(image, -1, 1)
