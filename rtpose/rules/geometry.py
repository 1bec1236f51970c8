"""Zone shapes for rules: pure point-in-shape tests in image pixels.

Coordinates are image pixels as the pose decoder reports them: x to the right,
y downwards, origin at the top-left corner. Points on a circle's or a
rectangle's boundary count as inside; for polygons the boundary is decided by
the even-odd rule and may go either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Circle:
    center: tuple[float, float]
    radius: float

    def contains(self, x: float, y: float) -> bool:
        dx = x - self.center[0]
        dy = y - self.center[1]
        return dx * dx + dy * dy <= self.radius * self.radius


@dataclass(frozen=True)
class Rectangle:
    """Axis-aligned rectangle given by two opposite corners (any order)."""

    corner_a: tuple[float, float]
    corner_b: tuple[float, float]

    def contains(self, x: float, y: float) -> bool:
        (ax, ay), (bx, by) = self.corner_a, self.corner_b
        return min(ax, bx) <= x <= max(ax, bx) and min(ay, by) <= y <= max(ay, by)


@dataclass(frozen=True)
class Polygon:
    """Simple polygon (at least three vertices, implicitly closed); even-odd rule."""

    vertices: tuple[tuple[float, float], ...]

    def contains(self, x: float, y: float) -> bool:
        inside = False
        verts = self.vertices
        x_prev, y_prev = verts[-1]
        for x_cur, y_cur in verts:
            # Does the edge (prev -> cur) cross the horizontal ray going right from (x, y)?
            if (y_cur > y) != (y_prev > y):
                x_cross = x_cur + (y - y_cur) * (x_prev - x_cur) / (y_prev - y_cur)
                if x < x_cross:
                    inside = not inside
            x_prev, y_prev = x_cur, y_cur
        return inside


Shape = Circle | Rectangle | Polygon


def distance(x0: float, y0: float, x1: float, y1: float) -> float:
    return math.hypot(x1 - x0, y1 - y0)
