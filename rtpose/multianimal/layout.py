"""Animal slots and body parts of a multi-animal model, and the flat pose layout.

A multi-animal model finds up to ``A`` animals (DeepLabCut's ``individuals``), each with the same ``K``
body parts (DeepLabCut's ``multianimalbodyparts``), plus ``U`` body parts that exist once per frame
(``uniquebodyparts``, e.g. a lever or a second arena marker). rtpose carries a frame's result as one flat
``(A*K + U, 3)`` array of x, y, likelihood, in DeepLabCut's multi-animal ``.h5`` column order: animal 0's
K parts, animal 1's K parts, ..., then the unique parts. So every sink that handles a single-animal pose
(recordings, ZeroMQ, LSL, the Kalman filter) handles a multi-animal one unchanged, and
:meth:`AnimalLayout.animals` / :meth:`AnimalLayout.unique` are views of it as ``(A, K, 3)`` / ``(U, 3)``.

Row ``a`` is an identity *slot*: the tracker keeps the same animal in the same slot from frame to frame
(its track id says since when). A slot without an animal, or a body part the animal was not seen with,
is NaN in x, y and likelihood (as in DeepLabCut's multi-animal ``.h5`` files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: Joins an individual's name and a body part's name in flat names (``mouse1.snout``).
SEPARATOR = "."
#: DeepLabCut's individual name for the unique body parts in ``.h5`` files.
UNIQUE_INDIVIDUAL = "single"


@dataclass(frozen=True)
class AnimalLayout:
    """``individuals`` (A slot names), ``bodyparts`` (K per animal), ``unique_bodyparts`` (U, once per frame)."""

    individuals: tuple[str, ...]
    bodyparts: tuple[str, ...]
    unique_bodyparts: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "individuals", tuple(self.individuals))
        object.__setattr__(self, "bodyparts", tuple(self.bodyparts))
        object.__setattr__(self, "unique_bodyparts", tuple(self.unique_bodyparts))
        if not self.individuals or not self.bodyparts:
            raise ConfigError("a multi-animal layout needs at least one individual and one body part")
        for kind, names in (("individual", self.individuals), ("body part", self.bodyparts + self.unique_bodyparts)):
            if len(set(names)) != len(names):
                raise ConfigError(f"{kind} names repeat: {', '.join(names)}")
            bad = [n for n in names if not n or SEPARATOR in n]
            if bad:
                raise ConfigError(f"{kind} names must be non-empty and without {SEPARATOR!r}: {', '.join(map(repr, bad))}")

    @property
    def n_animals(self) -> int:
        return len(self.individuals)

    @property
    def n_bodyparts(self) -> int:
        return len(self.bodyparts)

    @property
    def n_unique(self) -> int:
        return len(self.unique_bodyparts)

    @property
    def n_flat(self) -> int:
        """Rows of the flat pose: ``A*K + U``."""
        return self.n_animals * self.n_bodyparts + self.n_unique

    def flat_names(self) -> tuple[str, ...]:
        """Names of the flat pose's rows: ``mouse1.snout``, ..., then the unique parts' own names."""
        return tuple(f"{ind}{SEPARATOR}{bp}" for ind in self.individuals for bp in self.bodyparts) + self.unique_bodyparts

    def columns(self) -> list[tuple[str, str]]:
        """(individual, bodypart) per flat row, as DeepLabCut's multi-animal ``.h5`` columns name them."""
        return ([(ind, bp) for ind in self.individuals for bp in self.bodyparts]
                + [(UNIQUE_INDIVIDUAL, bp) for bp in self.unique_bodyparts])

    def index(self, animal: int, bodypart: int) -> int:
        """Flat row of body part ``bodypart`` of slot ``animal``."""
        if not (0 <= animal < self.n_animals and 0 <= bodypart < self.n_bodyparts):
            raise IndexError(f"animal {animal}, body part {bodypart} outside {self.n_animals}x{self.n_bodyparts}")
        return animal * self.n_bodyparts + bodypart

    def animal_edges(self, edges) -> tuple[tuple[int, int], ...]:
        """Edges between body parts (indices into ``bodyparts``, e.g. a skeleton) -> the same edges within
        every animal, as flat rows."""
        k = self.n_bodyparts
        return tuple((a * k + i, a * k + j) for a in range(self.n_animals) for i, j in edges)

    def animals(self, flat: np.ndarray) -> np.ndarray:
        """``(..., A*K + U, C)`` -> a ``(..., A, K, C)`` view of the animals' rows (no copy)."""
        a, k = self.n_animals, self.n_bodyparts
        return flat[..., : a * k, :].reshape(*flat.shape[:-2], a, k, flat.shape[-1])

    def unique(self, flat: np.ndarray) -> np.ndarray:
        """``(..., A*K + U, C)`` -> a ``(..., U, C)`` view of the unique body parts' rows."""
        return flat[..., self.n_animals * self.n_bodyparts:, :]

    def to_dict(self) -> dict:
        return {"individuals": list(self.individuals), "bodyparts": list(self.bodyparts),
                "unique_bodyparts": list(self.unique_bodyparts)}

    @classmethod
    def from_dict(cls, d: dict) -> "AnimalLayout":
        return cls(tuple(d["individuals"]), tuple(d["bodyparts"]), tuple(d.get("unique_bodyparts", ())))
