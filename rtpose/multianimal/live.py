"""The pipeline's multi-animal step: a batch's maps -> animals in identity slots, per stream.

For each batch the pipeline runs a multi-animal model, then :meth:`AnimalStep.decode` assembles the
animals of every frame with DeepLabCut's semantics (:class:`~.decoder.MultiAnimalDecoder`) straight
into the batch's flat poses (assembly order); the pipeline maps them to full-frame pixels and stamps
each frame's time; then :meth:`AnimalStep.track` hands each frame's animals to its stream's
:class:`~.tracking.IdentityTracker`, which writes them back in slot order with the track id of each
slot (``PoseBatch.track_id``), and tells the stream's Kalman predictor to forget a slot that another
animal took (its velocity must not carry over).

A model with DeepLabCut's identity head (``AssemblyParams.with_identity``) takes the other path, the one
DeepLabCut's own video analysis takes with identity (ma-id): :meth:`AnimalStep.decode` puts each frame's
animals into identity order (:class:`~.identity.IdentityAssigner`, DeepLabCut's ``PredictKeypointIdentities``
+ ``AssignIndividualIdentities``, in model-input pixels before the pipeline's crop offset) and
:meth:`AnimalStep.track` keeps that order: slot ``j`` is individual ``j``, its track id is ``j`` (-1 when
empty); no motion tracking (docs/multianimal-tracking.md).

The time spent assembling and tracking is added up per frame (``summary()``), so benchmarks and the
run summary report it apart from the network. The clock is the pipeline's, passed in.

:class:`IdentitySlots` is the tracking part alone, shared with the top-down path
(:class:`rtpose.multianimal.topdown_model.TopDownStep`), which fills the batch's flat poses with the animals
found in each crop instead of assembling them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..results import PoseBatch
from .decoder import MultiAnimalDecoder
from .decoder import warmup as warmup_decoder
from .identity import IdentityAssigner
from .identity import warmup as warmup_identity
from .layout import AnimalLayout
from .params import AssemblyParams
from .tracking import IdentityTracker
from .tracking import warmup as warmup_tracker


class IdentitySlots:
    """Identity tracking for ``n_streams`` streams of a multi-animal model: a decoding step writes a batch's
    animals into rows ``[:n]`` of ``batch.pose`` (``self._n_animals[i]`` animals in row ``i``, NaN beyond
    them), then :meth:`track` puts them into identity slots.

    Args:
        layout: the model's (``ModelMetadata.layout``).
        n_streams: one tracker per stream.
        capacity: the largest batch.
        clock: the pipeline's clock (ns), for the cost summary only.
        tracker_options: keyword arguments of :class:`IdentityTracker` (gate, how long a lost animal keeps
            its slot, ...).
    """

    def __init__(self, layout: AnimalLayout, n_streams: int, capacity: int, clock: Callable[[], int],
                 tracker_options: dict | None = None):
        warmup_tracker()  # compile (or load cached) kernels before the first frame
        self.layout = layout
        self.trackers = [IdentityTracker(layout.n_animals, layout.n_bodyparts, **(tracker_options or {}))
                         for _ in range(n_streams)]
        self._clock = clock
        a, k = layout.n_animals, layout.n_bodyparts
        self._detections = np.empty((a, k, 3))  # one frame's animals, copied out of the batch
        self._previous_ids = np.full((n_streams, a), -1, np.int64)
        self._n_animals = np.zeros(capacity, np.int64)
        self.frames = 0
        self.animals_seen = 0
        self.tracking_ns = 0
        #: True when the decoding step already put every animal in its slot (DeepLabCut's identity head):
        #: then track id = slot, no motion tracking (ma-id)
        self.slots_are_identities = False

    def track(self, batch: PoseBatch, n: int, forget: Callable[[int, int, int], None]) -> None:
        """Put each row's animals into its stream's identity slots, at the row's ``t_frame_ns``.

        ``forget(stream, first_row, stop_row)`` is called for the flat pose rows of each slot whose animal
        changed (a new track id, or the slot emptied), before the Kalman filter sees the frame."""
        t0 = self._clock()
        lay = self.layout
        a, k = lay.n_animals, lay.n_bodyparts
        det = self._detections
        for i in range(n):
            s = int(batch.stream[i])
            found = int(self._n_animals[i])
            animals = batch.pose[i, : a * k].reshape(a, k, 3)
            if self.slots_are_identities:  # slots are identities already (decode): track id = identity (ma-id)
                for slot in range(a):
                    batch.track_id[i, slot] = slot if np.isfinite(animals[slot, :, 2]).any() else -1
            else:
                np.copyto(det, animals)
                self.trackers[s].update(int(batch.t_frame_ns[i]), det[:found], animals, batch.track_id[i])
            ids, previous = batch.track_id[i], self._previous_ids[s]
            for slot in range(a):
                if ids[slot] != previous[slot]:
                    forget(s, slot * k, (slot + 1) * k)
                    previous[slot] = ids[slot]
            self.animals_seen += found
        self.frames += n
        self.tracking_ns += self._clock() - t0

    def summary(self) -> dict[str, float]:
        """Mean animals found per frame and the mean cost of tracking (ms per frame)."""
        f = max(self.frames, 1)
        return {
            "frames": self.frames,
            "animals_per_frame": round(self.animals_seen / f, 3),
            "tracking_ms_per_frame": round(self.tracking_ns / f / 1e6, 4),
            "tracks_started": sum(t.tracks_started for t in self.trackers),
            "detections_dropped": sum(t.dropped for t in self.trackers),
        }


class AnimalStep(IdentitySlots):
    """Decoding (DeepLabCut's bottom-up assembly) and identity tracking for ``n_streams`` streams of a
    bottom-up multi-animal model. ``params``: the model's ``ModelMetadata.assembly``; the rest as
    :class:`IdentitySlots`."""

    def __init__(self, params: AssemblyParams, layout: AnimalLayout, n_streams: int, capacity: int,
                 clock: Callable[[], int], tracker_options: dict | None = None):
        warmup_decoder(params, layout)  # compile (or load cached) kernels before the first frame
        super().__init__(layout, n_streams, capacity, clock, tracker_options)
        self.decoder = MultiAnimalDecoder(params, layout, capacity)
        self.assembly_ns = 0
        self.identity = None  # DeepLabCut's identity head: slots = identities (ma-id)
        if params.with_identity:
            warmup_identity(layout.n_animals, layout.n_bodyparts)
            self.identity = IdentityAssigner(params.identity_stride, params.identity_apply_sigmoid,
                                             layout.n_animals, layout.n_bodyparts)
            self.slots_are_identities = True

    def decode(self, maps: Sequence[np.ndarray], batch: PoseBatch, n: int) -> None:
        """Assemble the animals of rows ``[:n]`` into ``batch.pose`` (DeepLabCut's order, NaN beyond them)."""
        t0 = self._clock()
        scores, locref, paf, *extra = maps  # + the unique-part head's score maps and offsets, + identity maps
        unique = extra[:2] if self.layout.n_unique else ()
        n_animals, _ = self.decoder.decode(scores, locref, paf, batch.pose, n,
                                           unique_scores=unique[0] if unique else None,
                                           unique_locref=unique[1] if unique else None)
        self._n_animals[:n] = n_animals
        if self.identity is not None:  # identity order, in model-input pixels (ma-id)
            a, k = self.layout.n_animals, self.layout.n_bodyparts
            for i in range(n):
                self.identity.assign(extra[-1][i], batch.pose[i, : a * k].reshape(a, k, 3), int(n_animals[i]))
        self.assembly_ns += self._clock() - t0

    def summary(self) -> dict[str, float]:
        """Mean animals assembled per frame and the mean cost of assembly and of tracking (ms per frame)."""
        out = super().summary()
        out["assembly_ms_per_frame"] = round(self.assembly_ns / max(self.frames, 1) / 1e6, 4)
        return out
