"""An object as a handful of feature tokens, not one pooled vector (yolz-model/2).

The embedder turns every reference view, at each of the model's view sizes, into a grid of unit
feature tokens (one per 16x16 patch). The tokens that show the object (alpha; all of them for a
view without alpha) are pooled over all views and sizes, and the object keeps
  slot 0:      the renormalised mean of all its tokens (the classic mean-of-N embedding), and
  slots 1..T-1 a farthest-point sample of its tokens: the most different local appearances
               (label, cap, side, top), so a cell that matches any part of the object is found.
Fixed T keeps the detector's input a plain [K, T * D] matrix and its cost flat in views; training
(training/model/match.py) calls these same functions, so what it learns on is what ships.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from yolz_ros.runtime.geometry import ALPHA_VISIBLE, Letterbox


def token_mask(alpha: Optional[np.ndarray], src_hw, size: int, patch: int,
               min_fraction: float, no_alpha_centre: float = 1.0) -> np.ndarray:
    """bool [size // patch, size // patch]: which tokens of a view letterboxed to size x size show
    the object. With alpha: a token counts when >= min_fraction of its patch is visible
    (alpha >= 128). Without alpha (a phone photo: the object somewhere in the middle of its
    background): the tokens whose centre lies in the central `no_alpha_centre` fraction of the
    image, both ways (measured on the real-object benchmark: all tokens let the background match
    every scene). At least one token always counts (the one with the most object in it)."""
    h, w = src_hw
    lb = Letterbox.fit((h, w), (size, size))
    rw, rh = lb.resized_width, lb.resized_height
    g = size // patch
    if alpha is None:
        centres = (np.arange(g) + 0.5) * patch
        cx = np.abs(centres - (lb.offset_x + rw / 2)) <= no_alpha_centre * rw / 2
        cy = np.abs(centres - (lb.offset_y + rh / 2)) <= no_alpha_centre * rh / 2
        mask = cy[:, None] & cx[None, :]
        if not mask.any():  # a sliver of an image: its middle token
            mask[min(g - 1, int((lb.offset_y + rh / 2) // patch)),
                 min(g - 1, int((lb.offset_x + rw / 2) // patch))] = True
        return mask
    visible = np.zeros((size, size), np.float32)
    src = (np.asarray(alpha) >= ALPHA_VISIBLE).astype(np.float32)
    interp = cv2.INTER_AREA if rw < w else cv2.INTER_LINEAR
    visible[lb.offset_y:lb.offset_y + rh, lb.offset_x:lb.offset_x + rw] = \
        cv2.resize(src, (rw, rh), interpolation=interp)
    frac = visible[:g * patch, :g * patch].reshape(g, patch, g, patch).mean(axis=(1, 3))
    mask = frac >= min_fraction
    if not mask.any():
        mask = frac >= frac.max() - 1e-6
    return mask


def farthest_point_indices(tokens: np.ndarray, count: int, start: int) -> np.ndarray:
    """Indices of `count` tokens (unit rows of [M, D]) by farthest-point sampling in cosine
    distance, from `start`. With fewer than `count` tokens every token is taken, repeating."""
    m = len(tokens)
    if count <= 0:
        return np.empty(0, np.int64)
    if m <= count:
        return np.resize(np.roll(np.arange(m), -start), count)
    chosen = np.empty(count, np.int64)
    chosen[0] = start
    nearest = tokens @ tokens[start]  # cosine of every token to its nearest chosen one
    for i in range(1, count):
        nearest[chosen[i - 1]] = np.inf
        nxt = int(np.argmin(nearest))
        chosen[i] = nxt
        nearest = np.maximum(nearest, tokens @ tokens[nxt])
    return chosen


def object_tokens(tokens: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, D] object tokens from its pooled view tokens [M, D] (unit rows), and the indices of the
    sampled ones (slot 0 is the mean, not a sampled token). See the module docstring."""
    tokens = np.asarray(tokens, np.float32)
    if tokens.ndim != 2 or len(tokens) == 0:
        raise ValueError(f"need tokens [M, D] with M >= 1, got {tokens.shape}")
    mean = tokens.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("the views' tokens cancel out (no common direction); send views that "
                         "show the same object")
    mean /= norm
    idx = farthest_point_indices(tokens, count - 1, int(np.argmax(tokens @ mean)))
    return np.concatenate([mean[None], tokens[idx]]).astype(np.float32), idx
