"""One fixed colour per body part, shared by the rendered video, the live preview and the figures.

Matplotlib's ``tab10`` palette, in body-part order (the model's channel order), so a
body part has the same colour in every picture rtpose makes; no matplotlib needed.
"""

from __future__ import annotations

#: tab10 as (r, g, b) 0-255.
PALETTE_RGB = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)


def bodypart_rgb(k: int) -> tuple[int, int, int]:
    return PALETTE_RGB[k % len(PALETTE_RGB)]


def bodypart_bgr(k: int) -> tuple[int, int, int]:
    r, g, b = bodypart_rgb(k)
    return (b, g, r)


def bodypart_mpl(k: int) -> tuple[float, float, float]:
    """The same colour for matplotlib (0-1 floats)."""
    return tuple(c / 255.0 for c in bodypart_rgb(k))
