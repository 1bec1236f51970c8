"""Drawing poses onto frames with OpenCV (used by ``rtpose render`` and the live preview).

:class:`PoseOverlay` keeps a short history of poses and draws, in place on a BGR
frame: a fading trail per body part (older segments thinner and closer to
grey), skeleton edges between confident parts, every body part in its fixed
colour (:mod:`rtpose.viz.colors`) — a filled dot when its likelihood is at
least ``pcutoff``, a hollow ring when below — a legend, and a stamp with the
frame index and time. With a multi-animal ``layout`` the colour says which
animal (one per identity slot, as DeepLabCut's ``color_by="individual"``; unique
body parts keep colours of their own) and the legend names the individuals. Its buffers are allocated once; drawing one 640x480
frame costs 1.2-1.6 ms on a loaded 2-core machine (docs/offline-tools.md).
"""

from __future__ import annotations

import json
from typing import Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from .colors import bodypart_bgr

FONT = cv2.FONT_HERSHEY_SIMPLEX
SKELETON_BGR = (235, 235, 235)
GREY = np.array((128, 128, 128), np.float64)


def parse_skeleton(spec, bodyparts: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Skeleton edges as index pairs. ``spec``: None/"" (none), ``"a-b,b-c"``, a JSON text or a list of
    [a, b] name pairs (DeepLabCut's config.yaml ``skeleton``). Unknown names raise ConfigError."""
    if spec is None or spec == "" or spec == []:
        return ()
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("["):
            try:
                pairs = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"skeleton {spec!r} is not valid JSON ({exc}); write a-b,b-c") from None
        else:
            pairs = [edge.split("-") for edge in text.split(",") if edge.strip()]
    else:
        pairs = spec
    index = {b: i for i, b in enumerate(bodyparts)}
    out = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"skeleton edge {pair!r}: give two bodypart names, e.g. snout-tailbase")
        a, b = (str(p).strip() for p in pair)
        for name in (a, b):
            if name not in index:
                raise ConfigError(f"skeleton edge {a}-{b}: unknown bodypart {name!r}; the bodyparts are "
                                  f"{', '.join(bodyparts)}")
        out.append((index[a], index[b]))
    return tuple(out)


class PoseOverlay:
    """Draws poses of ``bodyparts`` on frames of size ``width`` x ``height``; call :meth:`draw` per frame in
    order (the trail is the poses of the last ``trail`` calls)."""

    def __init__(self, bodyparts: Sequence[str], width: int, height: int, *, skeleton: Sequence[tuple[int, int]] = (),
                 pcutoff: float = 0.6, trail: int = 15, legend: bool = True, layout=None):
        self.bodyparts = tuple(bodyparts)
        self.k = len(self.bodyparts)
        self.skeleton = tuple(skeleton)
        self.pcutoff = float(pcutoff)
        self.trail = max(0, int(trail))
        if layout is None:
            self.colors = [bodypart_bgr(i) for i in range(self.k)]
            self._legend_items = list(zip(self.bodyparts, self.colors))
        else:  # one colour per animal slot, then one per unique body part
            a, u = layout.n_animals, layout.n_unique
            self.colors = ([bodypart_bgr(i) for i in range(a) for _ in layout.bodyparts]
                           + [bodypart_bgr(a + j) for j in range(u)])
            self._legend_items = ([(ind, bodypart_bgr(i)) for i, ind in enumerate(layout.individuals)]
                                  + [(bp, bodypart_bgr(a + j)) for j, bp in enumerate(layout.unique_bodyparts)])
        scale = max(width, height) / 640.0
        self.radius = max(3, int(round(5 * scale)))
        self.font_scale = 0.5 * max(scale, 0.6)
        self.thickness = max(1, int(round(scale)))
        self._history = np.full((max(self.trail, 1), self.k, 3), np.nan)
        self._seen = 0
        # per trail age (oldest first): colour pulled towards grey and line thickness
        ages = np.linspace(0.25, 1.0, max(self.trail - 1, 1))
        self._trail_style = [([tuple(int(c) for c in GREY + a * (np.array(col) - GREY)) for col in self.colors],
                              max(1, int(round(a * 3 * self.thickness))))
                             for a in ages]
        self._legend = self._make_legend() if legend else None

    def reset(self) -> None:
        self._history[:] = np.nan
        self._seen = 0

    def draw(self, image: np.ndarray, pose: np.ndarray | None, *, frame_index: int, t_s: float | None) -> None:
        """Draw ``pose`` ((K, 3) x, y, likelihood; None or NaN: no pose for this frame) on ``image``."""
        if self.trail:
            slot = self._seen % self.trail
            if pose is None:
                self._history[slot] = np.nan
            else:
                np.copyto(self._history[slot], pose)
            self._seen += 1
            self._draw_trail(image)
        if pose is not None:
            self._draw_pose(image, pose)
        if self._legend is not None:
            h, w = self._legend.shape[:2]
            if h < image.shape[0] and w < image.shape[1]:
                roi = image[image.shape[0] - h - 4:image.shape[0] - 4, 4:4 + w]
                cv2.addWeighted(self._legend, 0.75, roi, 0.25, 0, dst=roi)
        self._stamp(image, frame_index, t_s, pose is None or not np.isfinite(pose[:, :2]).any())

    # ------------------------------------------------------------------ parts
    def _draw_trail(self, image: np.ndarray) -> None:
        n = min(self._seen, self.trail)
        if n < 2:
            return
        order = [(self._seen - n + i) % self.trail for i in range(n)]  # oldest first
        hist = self._history[order]
        ok = (hist[..., 2] >= self.pcutoff) & np.isfinite(hist[..., 0]) & np.isfinite(hist[..., 1])
        pts = np.nan_to_num(hist[..., :2]).round().astype(np.int32)
        offset = len(self._trail_style) - (n - 1)
        for i in range(1, n):
            colors, thick = self._trail_style[offset + i - 1]
            for k in range(self.k):
                if ok[i, k] and ok[i - 1, k]:
                    cv2.line(image, tuple(pts[i - 1, k]), tuple(pts[i, k]), colors[k], thick, cv2.LINE_AA)

    def _draw_pose(self, image: np.ndarray, pose: np.ndarray) -> None:
        finite = np.isfinite(pose[:, 0]) & np.isfinite(pose[:, 1])
        confident = finite & (pose[:, 2] >= self.pcutoff)
        pts = np.nan_to_num(pose[:, :2]).round().astype(np.int32)
        for a, b in self.skeleton:
            if confident[a] and confident[b]:
                cv2.line(image, tuple(pts[a]), tuple(pts[b]), SKELETON_BGR, self.thickness + 1, cv2.LINE_AA)
        r = self.radius
        for k in range(self.k):
            if not finite[k]:
                continue
            p = tuple(pts[k])
            if confident[k]:
                cv2.circle(image, p, r + 1, (0, 0, 0), -1, cv2.LINE_AA)
                cv2.circle(image, p, r, self.colors[k], -1, cv2.LINE_AA)
            else:  # unsure: a hollow ring, so a glance tells which points to distrust
                cv2.circle(image, p, r + 1, self.colors[k], max(1, self.thickness), cv2.LINE_AA)

    def _stamp(self, image: np.ndarray, frame_index: int, t_s: float | None, no_pose: bool) -> None:
        text = f"frame {frame_index}" + (f"  {t_s:8.3f} s" if t_s is not None else "") + ("  no pose" if no_pose else "")
        (w, h), base = cv2.getTextSize(text, FONT, self.font_scale, self.thickness)
        cv2.rectangle(image, (0, 0), (w + 10, h + base + 10), (0, 0, 0), -1)
        cv2.putText(image, text, (5, h + 5), FONT, self.font_scale, (255, 255, 255), self.thickness, cv2.LINE_AA)

    def _make_legend(self) -> np.ndarray:
        scale, th = self.font_scale, self.thickness
        items = self._legend_items
        sizes = [cv2.getTextSize(name, FONT, scale, th)[0] for name, _ in items]
        line_h = max(s[1] for s in sizes) + 8
        hollow = f"likelihood < {self.pcutoff:g}"
        width = max([s[0] for s in sizes] + [cv2.getTextSize(hollow, FONT, scale, th)[0][0]]) + 3 * self.radius + 16
        legend = np.zeros((line_h * (len(items) + 1) + 6, width, 3), np.uint8)
        for k, name in enumerate([name for name, _ in items] + [hollow]):
            y = 4 + line_h * k + line_h // 2
            x = 6 + self.radius
            if k < len(items):
                cv2.circle(legend, (x, y), self.radius, items[k][1], -1, cv2.LINE_AA)
            else:
                cv2.circle(legend, (x, y), self.radius + 1, (200, 200, 200), max(1, th), cv2.LINE_AA)
            cv2.putText(legend, name, (x + self.radius + 8, y + line_h // 2 - 5), FONT, scale, (255, 255, 255), th,
                        cv2.LINE_AA)
        return legend
