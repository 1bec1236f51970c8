"""A custom rtpose rule condition: the mouse is heading towards a point.

Referenced from rules_custom.yaml as ``python: {name: "my_rules.py:HeadingTowards", params: ...}``.
A condition gets the pose as a read-only (K, 3) array of x, y, likelihood, the
frame time in ns and the bodypart names, and returns True, False or None
(unknown: the rule treats it as False). Keep it quick and free of I/O: it runs
on the inference thread for every frame.
"""

import math

from rtpose.rules import custom_rule


@custom_rule  # also usable as `python: HeadingTowards` once this module is imported
class HeadingTowards:
    def __init__(self, target, max_angle_deg=30.0, min_likelihood=0.6):
        self.tx, self.ty = target
        self.max_angle = math.radians(max_angle_deg)
        self.min_likelihood = min_likelihood

    def condition(self, pose, t_ns, bodyparts):
        snout = pose[bodyparts.index("snout")]
        tail = pose[bodyparts.index("tailbase")]
        if snout[2] < self.min_likelihood or tail[2] < self.min_likelihood:
            return None  # not seen well enough: unknown
        heading = math.atan2(snout[1] - tail[1], snout[0] - tail[0])
        to_target = math.atan2(self.ty - snout[1], self.tx - snout[0])
        diff = abs((heading - to_target + math.pi) % (2 * math.pi) - math.pi)
        return diff <= self.max_angle
