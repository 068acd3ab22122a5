""""Not that one": negative views of an object, training-free.

A negative view shows a look-alike that the detector confuses with an object (a same-shape
sibling: the red mug beside the blue one). Each negative is embedded like a one-view object and
scored in the same network call as the objects (more rows of the K axis). Where a cell matches
one of an object's negatives better than the object itself, the object's probability there is
scaled down by how much better: p' = p * m p / q for a negative scoring q > m p (margin
m = MARGIN, below); elsewhere it is unchanged. A sibling's own view scores the sibling higher
than the object's views do, so the sibling's cells fall while the object's stay.

A negative that agrees with the object's mean token at least as well as the object's own most
typical view is the object itself, not a look-alike, and is refused (it would suppress the
object everywhere).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

MAX_NEGATIVES = 4  # per object: each is one more row of every frame's network call
# A negative is one view; an object is a mean of several, whose maps run higher. A cell counts as
# the look-alike's where its negative scores at least MARGIN times the object's score. Chosen on
# val (10 episodes, one negative view, N = 8): siblings' FPR@95 0.797 -> 0.746 (1.0), 0.661 (0.5),
# 0.678 (0.3), recall at the threshold unchanged down to 0.3. Harder rules on v4's val maps (30
# episodes) cut siblings' FPR@95 further (0.636 unsuppressed, 0.600 this rule; (m p / q)^4 for
# all q > m p 0.533; one factor per scene from the best cells 0.549) but lower recall or raise
# the overall FPR@95: one view of a look-alike scores too much like the object to do more here.
MARGIN = 0.5


class NegativeError(ValueError):
    """A negative view that cannot be used (it is the object; too many)."""


def check_negative(object_per_view: np.ndarray, object_vector: np.ndarray,
                   negative_vector: np.ndarray, token_dim: int, existing: int = 0) -> float:
    """Refuse a negative (NegativeError) that is the object itself, or one too many; returns its
    cosine to the object's mean token. ``object_per_view`` [N, D]: the object's unit per-view
    mean tokens; vectors: flattened [T * D] token slots (slot 0 = the unit mean token)."""
    if existing >= MAX_NEGATIVES:
        raise NegativeError(f"the object has {existing} negative views already, the most it "
                            f"may have (MAX_NEGATIVES = {MAX_NEGATIVES}); remove some first")
    mean = np.asarray(object_vector, np.float32)[:token_dim]
    own = np.asarray(object_per_view, np.float32) @ mean  # [N] each own view's agreement
    cosine = float(np.asarray(negative_vector, np.float32)[:token_dim] @ mean)
    if cosine >= float(own.max()) - 1e-6:
        raise NegativeError(
            f"the negative view matches the object's own views (cosine {cosine:.3f} to its mean; "
            f"its most typical own view: {float(own.max()):.3f}): it shows the object itself, "
            "not a look-alike. Register the look-alike's view, or add this one as a view")
    return cosine


def stack_negatives(objects: np.ndarray, negatives: Optional[Sequence[Optional[np.ndarray]]]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(rows to score: the K objects then every negative, [K + M, E]; owner object of each
    negative [M]). ``negatives``: None, or K entries each None or float32 [M_k, E]."""
    if negatives is None:
        return objects, np.zeros(0, np.int64)
    if len(negatives) != len(objects):
        raise ValueError(f"negatives: one entry per object ({len(objects)}), got {len(negatives)}")
    rows, owners = [objects], []
    for k, neg in enumerate(negatives):
        if neg is None or len(neg) == 0:
            continue
        neg = np.ascontiguousarray(neg, np.float32)
        if neg.ndim != 2 or neg.shape[1] != objects.shape[1]:
            raise ValueError(f"negatives of object {k} must be float32 [M, {objects.shape[1]}], "
                             f"got shape {neg.shape}")
        if len(neg) > MAX_NEGATIVES:
            raise ValueError(f"object {k} has {len(neg)} negatives, more than {MAX_NEGATIVES}")
        if not np.isfinite(neg).all():
            raise ValueError(f"negatives of object {k} contain NaN or inf")
        rows.append(neg)
        owners += [k] * len(neg)
    return np.concatenate(rows), np.asarray(owners, np.int64)


def suppress(probs: np.ndarray, negative_probs: np.ndarray, owners: np.ndarray,
             margin: float | None = None) -> np.ndarray:
    """The objects' probabilities [K, r, c] with cells that match a negative better lowered
    (p * margin * p / q where the best negative q > margin * p). ``negative_probs`` [M, r, c],
    ``owners`` [M]."""
    if len(owners) == 0:
        return probs
    out = probs.copy()
    for k in np.unique(owners):
        q = negative_probs[owners == k].max(axis=0) / (MARGIN if margin is None else margin)
        p = out[k]
        worse = q > p
        p[worse] = p[worse] * p[worse] / q[worse]
    return out
