"""Registering an object: request -> views -> embedding -> feedback -> response.

Plain logic over the service types (no node): ``register`` fills a RegisterObject response and
returns the library's new snapshot, or None when the request was refused (the response then says
what to fix). The caller serialises registrations and swaps the snapshot it gets.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from yolz_ros.image import ACCEPTED, image_msg_to_array
from yolz_ros.library import LibraryError, validate_name
from yolz_ros.limits import (MAX_REQUEST_BYTES, MAX_VIEW_BYTES, MAX_VIEW_PIXELS, MAX_VIEW_SIDE,
                             MAX_VIEWS, MIN_VIEW_SIDE)
from yolz_ros.msg import ViewFeedback
# A view whose agreement with the object's mean is this far below the others' gets a note.
DISAGREEMENT_MARGIN = 0.2
DISAGREE_NOTE = "this view disagrees with the others: is it the same object?"


class Refused(Exception):
    """A request that cannot be carried out: ``message`` says what to fix; ``notes`` are
    per-view notes {view index: text}."""

    def __init__(self, message: str, notes: Optional[Dict[int, str]] = None):
        super().__init__(message)
        self.message = message
        self.notes = notes or {}


def disagreeing_views(agreement, margin: float = DISAGREEMENT_MARGIN) -> list:
    """Indices of views whose agreement with the object's mean is far below the others' (more
    than ``margin`` under the median of the rest). Needs at least 3 views to tell."""
    agreement = np.asarray(agreement, np.float64).reshape(-1)
    if agreement.size < 3:
        return []
    return [i for i in range(agreement.size)
            if agreement[i] < float(np.median(np.delete(agreement, i))) - margin]


def library_full(names: Sequence[str], name: str, max_objects: int) -> bool:
    """True when adding ``name`` would exceed ``max_objects`` (replacing an object never does)."""
    return name not in names and len(names) >= max_objects


def check_request(name: str, num_views: int, names: Sequence[str], max_objects: int) -> None:
    """The checks that need no pixels; raises Refused. (Duplicates are the library's check, made
    under its lock when the object is stored.)"""
    try:
        validate_name(name)
    except LibraryError as exc:
        raise Refused(str(exc)) from None
    if num_views == 0:
        raise Refused(f"no views: send 1..{MAX_VIEWS} sensor_msgs/Image views of the object in "
                      "'views'")
    if num_views > MAX_VIEWS:
        raise Refused(f"{num_views} views sent, at most {MAX_VIEWS} are accepted: send fewer "
                      "views")
    if library_full(names, name, max_objects):
        raise Refused(f"the library is full ({len(names)} objects, max_objects={max_objects}): "
                      "remove an object or raise max_objects")


def decode_view(view) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 RGB or HxWx4 RGBA uint8 (alpha = object mask); ValueError
    saying what is wrong."""
    if view.width < MIN_VIEW_SIDE or view.height < MIN_VIEW_SIDE:
        raise ValueError(f"size {view.width}x{view.height} is too small: each side must be at "
                         f"least {MIN_VIEW_SIDE} pixels")
    if view.width > MAX_VIEW_SIDE or view.height > MAX_VIEW_SIDE:
        raise ValueError(f"size {view.width}x{view.height} is too large: each side must be at "
                         f"most {MAX_VIEW_SIDE} pixels (crop or scale the view to the object)")
    if view.width * view.height > MAX_VIEW_PIXELS:
        raise ValueError(f"size {view.width}x{view.height} is too large: at most "
                         f"{MAX_VIEW_PIXELS} pixels per view (crop or scale the view to the "
                         "object)")
    if len(view.data) > MAX_VIEW_BYTES:
        raise ValueError(f"{len(view.data)} bytes of data, over the limit of {MAX_VIEW_BYTES} "
                         "bytes per view (crop or scale the view to the object)")
    rgb, alpha = image_msg_to_array(view)
    if alpha is not None:
        rgb = np.dstack([rgb, alpha])
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def check_request_bytes(views) -> None:
    """Refused if the views' data together exceed MAX_REQUEST_BYTES (before any conversion)."""
    total = sum(len(v.data) for v in views)
    if total > MAX_REQUEST_BYTES:
        raise Refused(f"the views carry {total} bytes together, over the limit of "
                      f"{MAX_REQUEST_BYTES} bytes per request: send fewer or smaller views "
                      "(the model sees each view at its own small input size)")


def decode_views(views) -> List[np.ndarray]:
    """All views, or Refused naming every bad one (and a note on each)."""
    check_request_bytes(views)
    out, notes = [], {}
    for i, view in enumerate(views):
        try:
            out.append(decode_view(view))
        except ValueError as exc:
            notes[i] = str(exc)
    if notes:
        raise Refused("invalid views, nothing registered: "
                      + "; ".join(f"view {i}: {t}" for i, t in notes.items())
                      + f" (supported encodings: {ACCEPTED})", notes)
    return out


def view_feedback(num_views: int, agreement=None) -> List[ViewFeedback]:
    """Per-view feedback: unused and empty without ``agreement``; with it, used, its agreement,
    and DISAGREE_NOTE on views far below the others."""
    fb = [ViewFeedback(index=i, used=False, agreement=0.0, note="") for i in range(num_views)]
    if agreement is not None:
        agreement = np.asarray(agreement, np.float32).reshape(-1)
        for i, f in enumerate(fb):
            f.used = True
            f.agreement = float(agreement[i]) if i < agreement.size else 0.0
        for i in disagreeing_views(agreement):
            fb[i].note = DISAGREE_NOTE
    return fb


def register(request, response, library, embed_views: Callable, max_objects: int):
    """Carry out a RegisterObject request against ``library`` (an ObjectLibrary) with
    ``embed_views`` (Detector.embed_views). Returns the new snapshot, or None if refused."""
    name, n = request.name, len(request.views)
    names = library.snapshot.names
    response.success = False
    response.num_views_used = 0
    response.names = list(names)
    response.view_feedback = view_feedback(n)
    try:
        check_request(name, n, names, max_objects)
        views = decode_views(request.views)
        try:
            embedding = embed_views(views)
        except ValueError as exc:
            raise Refused(f"the views could not be embedded: {exc}") from None
        replaced = name in names
        try:
            snapshot = library.add(name, views, embedding, replace=request.replace)
        except LibraryError as exc:
            raise Refused(str(exc)) from None
        except OSError as exc:
            raise Refused(f"storing the object in {library.directory} failed: {exc}") from None
    except Refused as refusal:
        response.message = refusal.message
        for i, note in refusal.notes.items():
            response.view_feedback[i].note = note
        return None
    response.success = True
    response.num_views_used = n
    response.names = list(snapshot.names)
    response.view_feedback = view_feedback(n, embedding.agreement)
    outliers = [f.index for f in response.view_feedback if f.note]
    response.message = (f"{'replaced' if replaced else 'registered'} {name!r} from {n} "
                        f"view{'s' if n != 1 else ''}")
    if outliers:
        response.message += (f"; views {outliers} disagree with the others: check they show the "
                             "same object")
    return snapshot


def remove(request, response, library):
    """Carry out a RemoveObject request; returns the new snapshot or None (response says why)."""
    response.success = False
    try:
        validate_name(request.name)
        snapshot = library.remove(request.name)
    except LibraryError as exc:
        response.message = str(exc)
    except OSError as exc:
        response.message = f"removing {request.name!r} failed: {exc}"
    else:
        response.success = True
        response.message = f"removed {request.name!r}"
        response.names = list(snapshot.names)
        return snapshot
    response.names = list(library.snapshot.names)
    return None


def list_objects(response, library, model_id: str):
    entries = library.entries()
    response.success = True
    response.model_id = model_id
    response.names = [n for n, _ in entries]
    response.num_views = [int(v) for _, v in entries]
    response.message = f"{len(entries)} object{'s' if len(entries) != 1 else ''}"
    if library.skipped:
        response.message += f"; unreadable entries skipped: {library.skipped}"
    return response
