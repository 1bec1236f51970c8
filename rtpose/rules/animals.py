"""Which pose rows a rule reads: body part names and ``animal:`` selectors.

A single-animal model's pose is ``(K, 3)``, one row per body part. A multi-animal
model's (:class:`~rtpose.multianimal.layout.AnimalLayout`) is the flat ``(A*K + U, 3)``
array: body part ``k`` of identity slot ``s`` is row ``s*K + k``, unique body part ``u``
is row ``A*K + u``. Rules name body parts by their plain names (``snout``, ``lever``)
and say whose with ``animal:``; :class:`PartIndex` turns both into rows and checks them,
with the messages the rules file loader shows (see docs/rules.md).

Selector values (as written in a rules file) and their normal form:

=================  ================  ==================================================
``self``           ``("self",)``     the rule's animal (a condition's default)
``any``            ``("any",)``      some animal present in the frame
``all``            ``("all",)``      every animal present in the frame
``other``          ``("other",)``    some animal present other than the reference one
``mouse1``         ``("slot", 0)``   an individual (identity slot) by name
``3`` (integer)    ``("track", 3)``  the slot that holds track id 3 on this frame
=================  ================  ==================================================
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ConfigError

SELF, ANY, ALL, OTHER = "self", "any", "all", "other"
KEYWORDS = (SELF, ANY, ALL, OTHER)
#: What a rule's own ``animal:`` accepts besides names and track ids.
RULE_ANIMALS = (ANY, ALL)


class PartIndex:
    """Body part names -> pose rows for one model, single- or multi-animal."""

    def __init__(self, bodyparts: Sequence[str], layout=None):
        bodyparts = tuple(bodyparts)
        self.layout = layout
        if layout is None:
            self.names = bodyparts
            self.n_animals = 0
            self.n_parts = 0
            self._animal_part: dict[str, int] = {}
            self._row = {name: i for i, name in enumerate(bodyparts)}
            self.individuals: tuple[str, ...] = ()
            return
        flat = layout.flat_names()
        if bodyparts != flat:
            raise ConfigError(
                f"the pose rows {', '.join(bodyparts)} are not the multi-animal layout's "
                f"{', '.join(flat)}; pass the model's flat names (AnimalLayout.flat_names())"
            )
        self.n_animals = layout.n_animals
        self.n_parts = layout.n_bodyparts
        self.individuals = layout.individuals
        self.names = layout.bodyparts + layout.unique_bodyparts
        self._animal_part = {name: k for k, name in enumerate(layout.bodyparts)}
        base = layout.n_animals * layout.n_bodyparts
        self._row = {name: base + u for u, name in enumerate(layout.unique_bodyparts)}

    @property
    def multi_animal(self) -> bool:
        return self.layout is not None

    def describe_parts(self) -> str:
        if not self.multi_animal:
            return ", ".join(self.names)
        text = f"{', '.join(self.layout.bodyparts)} (on every animal)"
        if self.layout.unique_bodyparts:
            text += f" and {', '.join(self.layout.unique_bodyparts)} (unique, once per frame)"
        return text

    def describe_animals(self, allowed: Sequence[str]) -> str:
        return (f"use {', '.join(allowed)}, an individual ({', '.join(self.individuals)}) "
                "or a track id (an integer >= 0)")

    def part_problem(self, name: Any) -> str | None:
        """Why ``name`` is not a body part of this model, or None."""
        if isinstance(name, str) and (name in self._animal_part or name in self._row):
            return None
        hint = ""
        if self.multi_animal and isinstance(name, str) and name in self.layout.flat_names():
            ind, _, bp = name.partition(".")
            hint = f" (write animal: {ind}, bodypart: {bp})"
        return f"unknown bodypart {name!r}{hint}; the model's bodyparts are {self.describe_parts()}"

    def check_part(self, name: Any) -> None:
        problem = self.part_problem(name)
        if problem is not None:
            raise ConfigError(problem)

    def is_animal_part(self, name: str) -> bool:
        """True for a body part every animal has (multi-animal models only)."""
        return name in self._animal_part

    def offset(self, name: str) -> int:
        """Row of a unique / single-animal body part, or ``k`` of an animal's part (row = slot*K + k)."""
        self.check_part(name)
        return self._animal_part[name] if name in self._animal_part else self._row[name]

    def selector(self, value: Any, allowed: Sequence[str]) -> tuple:
        """Normal form of an ``animal:`` value (see the module docstring); raises ConfigError."""
        if not self.multi_animal:
            raise ConfigError("this model tracks a single animal; 'animal' is for multi-animal models, remove it")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"animal {value!r} is not valid; {self.describe_animals(allowed)}")
        if isinstance(value, int):
            if value < 0:
                raise ConfigError(f"track id {value} must be >= 0")
            return ("track", value)
        if value in KEYWORDS:
            if value not in allowed:
                raise ConfigError(f"animal {value!r} is not allowed here; {self.describe_animals(allowed)}")
            return (value,)
        if value in self.individuals:
            return ("slot", self.individuals.index(value))
        raise ConfigError(f"unknown animal {value!r}; {self.describe_animals(allowed)}")

    def bind(self, name: str, animal: Any, allowed: Sequence[str]) -> tuple[int, tuple | None]:
        """(offset, selector) of one body part reference; selector None for unique/single-animal parts."""
        off = self.offset(name)
        if not self.is_animal_part(name):
            if animal is not None:
                if not self.multi_animal:
                    self.selector(animal, allowed)  # raises the single-animal message
                raise ConfigError(f"{name!r} is a unique bodypart (one per frame, no animal); remove 'animal'")
            return off, None
        return off, self.selector(SELF if animal is None else animal, allowed)
