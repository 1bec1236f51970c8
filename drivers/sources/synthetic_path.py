"""Where the synthetic mouse is at time t: a smooth, seeded, deterministic path.

Pure geometry (no drawing, no clocks), used by :mod:`.synthetic` to render
frames and by tests to find frames where the body is somewhere in particular.

The body centre goes round the frame centre on a wobbling orbit::

    x = cx + Ax(t) cos θ(t)        Ax(t) = Ax0 (1 + ε sin(ω2 t + φ2))
    y = cy + Ay(t) sin θ(t)        Ay(t) = Ay0 (1 + ε sin(ω2 t + φ3))
    θ(t) = φ0 + s (ω0 t + α sin(ω1 t + φ1)),   s = ±1, α ω1 ≤ ω0 / 2

θ never stops turning and the orbit radii change slowly, so the speed never
drops to zero and the heading (the direction of the velocity) is smooth. The
radii are chosen so the whole body stays inside the frame. Coordinates are
pixels in OpenCV's convention (pixel (col, row) is centred on (x, y) = (col, row)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Drawn positions are multiples of 1/SUBPIXEL px (OpenCV drawing ``shift=4``).
SUBPIXEL_SHIFT = 4
SUBPIXEL = 1 << SUBPIXEL_SHIFT


def quantize(v):
    """Round pixel coordinates to the sub-pixel grid OpenCV draws on."""
    return np.round(np.asarray(v, dtype=np.float64) * SUBPIXEL) / SUBPIXEL


@dataclass(frozen=True)
class MouseGeometry:
    """Sizes of the synthetic mouse, in pixels, for a frame of a given size."""

    semi_major: float  # half body length
    semi_minor: float  # half body width
    spot_radius: float  # dark round spot at the body centre
    head_offset: float  # body centre → head disk centre, along the heading
    head_radius: float
    tail_offset: float  # body centre → tail disk centre, against the heading
    tail_radius: float

    @classmethod
    def for_frame(cls, width: int, height: int) -> "MouseGeometry":
        s = min(width, height) / 480.0
        a = float(quantize(40.0 * s))
        return cls(
            semi_major=a,
            semi_minor=float(quantize(18.0 * s)),
            spot_radius=float(quantize(max(6.0 * s, 1.0))),
            head_offset=0.72 * a,
            head_radius=float(quantize(max(7.0 * s, 1.0))),
            tail_offset=0.72 * a,
            tail_radius=float(quantize(max(6.0 * s, 1.0))),
        )


class MousePath:
    """Body centre and heading as functions of time; vectorised over ``t_s``."""

    #: Relative amplitude ε of the orbit-radius wobble.
    WOBBLE = 0.25

    def __init__(self, width: int, height: int, seed: int = 0):
        if width < 32 or height < 32:
            raise ValueError(f"synthetic frames must be at least 32x32, got {width}x{height}")
        self.width = width
        self.height = height
        self.geometry = g = MouseGeometry.for_frame(width, height)
        rng = np.random.default_rng(seed)
        self.cx = (width - 1) / 2.0
        self.cy = (height - 1) / 2.0
        margin = g.semi_major + 2.0 + 0.01 * min(width, height)  # body half-length + anti-aliasing + air
        self.ax0 = (self.cx - margin) / (1 + self.WOBBLE)
        self.ay0 = (self.cy - margin) / (1 + self.WOBBLE)
        self.omega0 = rng.uniform(0.5, 0.9)  # rad/s: one lap in 7–12 s
        self.direction = 1.0 if rng.random() < 0.5 else -1.0
        self.omega1 = rng.uniform(0.7, 1.5)
        self.alpha = 0.5 * self.omega0 / self.omega1 * rng.uniform(0.3, 1.0)
        self.omega2 = rng.uniform(0.1, 0.3)
        self.phi = rng.uniform(0.0, 2 * np.pi, size=4)

    def at(self, t_s):
        """``(x, y, heading_rad)`` of the body centre at ``t_s`` seconds (scalars or arrays)."""
        t = np.asarray(t_s, dtype=np.float64)
        p0, p1, p2, p3 = self.phi
        e = self.WOBBLE
        theta = p0 + self.direction * (self.omega0 * t + self.alpha * np.sin(self.omega1 * t + p1))
        dtheta = self.direction * (self.omega0 + self.alpha * self.omega1 * np.cos(self.omega1 * t + p1))
        ax = self.ax0 * (1 + e * np.sin(self.omega2 * t + p2))
        ay = self.ay0 * (1 + e * np.sin(self.omega2 * t + p3))
        dax = self.ax0 * e * self.omega2 * np.cos(self.omega2 * t + p2)
        day = self.ay0 * e * self.omega2 * np.cos(self.omega2 * t + p3)
        c, s = np.cos(theta), np.sin(theta)
        x = self.cx + ax * c
        y = self.cy + ay * s
        vx = dax * c - ax * s * dtheta
        vy = day * s + ay * c * dtheta
        return x, y, np.arctan2(vy, vx)

    def keypoints(self, t_s) -> np.ndarray:
        """Head disk, body centre and tail disk centres, ``(..., 3, 2)`` float64, on the drawing grid."""
        return self.keypoints_from(*self.at(t_s))

    def keypoints_from(self, x, y, heading) -> np.ndarray:
        """:meth:`keypoints` for a body centre and heading already computed by :meth:`at`."""
        h = heading
        g = self.geometry
        ux, uy = np.cos(h), np.sin(h)
        body = np.stack([quantize(x), quantize(y)], axis=-1)
        head = np.stack([quantize(x + g.head_offset * ux), quantize(y + g.head_offset * uy)], axis=-1)
        tail = np.stack([quantize(x - g.tail_offset * ux), quantize(y - g.tail_offset * uy)], axis=-1)
        return np.stack([head, body, tail], axis=-2)


#: With ``crossings``, animal ``i``'s orbit is animal 0's scaled by ``1 - CROSSING_RADIUS_STEP * i``.
CROSSING_RADIUS_STEP = 0.04


def animal_paths(width: int, height: int, seed: int = 0, animals: int = 1, crossings: bool = True) -> list[MousePath]:
    """One :class:`MousePath` per animal: animal 0's is exactly the single mouse's (``MousePath(seed)``).

    Animal ``i >= 1`` draws its own path from the seed sequence ``[seed, i]``. With ``crossings`` the
    animals are made to meet, deterministically: every animal shares animal 0's orbit shape (the
    same slow radius wobble), scaled by ``1 - CROSSING_RADIUS_STEP * i`` (6–11 px closer to the centre
    per index at 640x480, so neighbours' bodies overlap side by side when they meet), and the
    direction of travel alternates with the index. Two neighbours then go round in opposite
    directions: their angle difference changes monotonically by at least ``(ω0_i + ω0_j) / 2 >= 0.5``
    rad/s, so they pass each other at least once every 2π / 0.5 ≈ 12.6 s (typically every 4–5 s).
    Without ``crossings`` each path is independent (they may or may not meet).
    """
    if animals < 1:
        raise ValueError(f"animals must be >= 1, got {animals}")
    first = MousePath(width, height, seed)
    paths = [first]
    for i in range(1, animals):
        p = MousePath(width, height, [int(seed), i])
        if crossings:
            scale = 1.0 - CROSSING_RADIUS_STEP * i
            p.ax0 = first.ax0 * scale
            p.ay0 = first.ay0 * scale
            p.omega2 = first.omega2
            p.phi = p.phi.copy()
            p.phi[2:] = first.phi[2:]
            p.direction = first.direction * (-1.0 if i % 2 else 1.0)
        paths.append(p)
    return paths


def covered(points: np.ndarray, keypoints: np.ndarray, geometry: MouseGeometry, margin_px: float = 0.0) -> np.ndarray:
    """Which ``points`` ``(..., M, 2)`` lie on an animal drawn at ``keypoints`` (head, body, tail ``(..., 3, 2)``).

    The drawn animal is its outer body ellipse (axes ``semi_major`` along the heading, ``semi_minor``
    across) plus its head and tail disks; ``margin_px`` grows (or, negative, shrinks) every shape.
    Returns a ``(..., M)`` bool array (leading dimensions broadcast).
    """
    g = geometry
    p = np.asarray(points, dtype=np.float64)
    k = np.asarray(keypoints, dtype=np.float64)
    head, body, tail = k[..., 0:1, :], k[..., 1:2, :], k[..., 2:3, :]
    u = head - body
    u = u / np.maximum(np.hypot(u[..., 0:1], u[..., 1:2]), 1e-12)
    d = p - body
    along = d[..., 0] * u[..., 0] + d[..., 1] * u[..., 1]
    across = -d[..., 0] * u[..., 1] + d[..., 1] * u[..., 0]
    a, b = g.semi_major + margin_px, g.semi_minor + margin_px
    in_body = (along / a) ** 2 + (across / b) ** 2 <= 1.0 if a > 0 and b > 0 else np.zeros(along.shape, bool)
    dh, dt = p - head, p - tail
    in_head = np.hypot(dh[..., 0], dh[..., 1]) <= g.head_radius + margin_px
    in_tail = np.hypot(dt[..., 0], dt[..., 1]) <= g.tail_radius + margin_px
    return in_body | in_head | in_tail
