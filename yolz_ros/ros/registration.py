"""Registering an object: request -> views -> embedding -> feedback -> response.

Plain logic over the service types (no node): ``register`` fills a RegisterObject response and
returns the library's new snapshot, or None when the request was refused (the response then says
what to fix). The caller serialises registrations and swaps the snapshot it gets; the node runs
them on the Registrar's thread, one core at most.
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from yolz_ros.runtime.crop import CropError, clip_box, crop_view
from yolz_ros.ros.cameras import find_camera
from yolz_ros.ros.pipeline import decode_frame
from yolz_ros.runtime.image import ACCEPTED
from yolz_ros.ros.image_msgs import check_layout, msg_pixels, image_msg_to_array, view_to_image_msg
from yolz_ros.runtime.library import LibraryError, validate_name
from yolz_ros.runtime.limits import (MAX_IMAGE_PIXELS, MAX_REQUEST_BYTES, MAX_VIEW_BYTES,
                             MAX_VIEW_PIXELS, MAX_VIEW_SIDE, MAX_VIEWS, MIN_VIEW_SIDE)
from yolz_ros.runtime.negatives import MAX_NEGATIVES, NegativeError, check_negative
from yolz_ros.msg import ViewFeedback
# A view whose agreement with the object's mean is this far below the others' gets a note.
DISAGREEMENT_MARGIN = 0.2
DISAGREE_NOTE = "this view disagrees with the others: is it the same object?"


def _plural(n: int, word: str = "view") -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


class Refused(Exception):
    """A request that cannot be carried out: ``message`` says what to fix; ``notes`` are
    per-view notes {view index: text}."""

    def __init__(self, message: str, notes: Optional[Dict[int, str]] = None):
        super().__init__(message)
        self.message = message
        self.notes = notes or {}


class Registrar:
    """The one thread the node's registrations run on. What a registration computes runs on
    this thread: the embedder (its session has one intra-op thread,
    startup.REGISTRATION_EMBED_THREADS, so ONNX Runtime computes on the caller) and GrabCut
    (single-threaded OpenCV), so a registration takes at most one core from the frame pipeline.
    It runs at the node's own priority: lowered (niceness +5) it held the frame worker up longer,
    not shorter (make soak, 4 min each: window min/median 0.73 vs 0.83, register p99 2437 vs 592
    ms; docs/reliability.md). OpenCV's own thread count is process-wide, so it is left alone."""

    def __init__(self):
        self.native_id: Optional[int] = None  # the thread's, once it runs
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "yolz_registration", self._start)

    def _start(self) -> None:
        self.native_id = threading.get_native_id()

    def submit(self, fn: Callable, *args, **kwargs) -> concurrent.futures.Future:
        """``fn(*args, **kwargs)`` on the registration thread: a future of its result."""
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def disagreeing_views(agreement, margin: float = DISAGREEMENT_MARGIN) -> list:
    """Indices of views whose agreement with the object's mean is far below the others' (more
    than ``margin`` under the median of the rest). Needs at least 3 views to tell."""
    agreement = np.asarray(agreement, np.float64).reshape(-1)
    if agreement.size < 3:
        return []
    return [i for i in range(agreement.size)
            if agreement[i] < float(np.median(np.delete(agreement, i))) - margin]


def library_full(names: Sequence[str], name: str, max_objects: int,
                 num_negatives: int = 0) -> bool:
    """True when adding ``name`` would exceed ``max_objects`` rows of a network call: the objects
    plus ``num_negatives``, their negative views (replacing an object never does)."""
    return name not in names and len(names) + num_negatives >= max_objects


def total_negatives(library) -> int:
    """The negative views of all objects (each one more row of every frame's network call)."""
    return sum(int(n) for _, _, n in library.counts())


def check_request(name: str, num_views: int, names: Sequence[str], max_objects: int,
                  num_negatives: int = 0) -> None:
    """The checks that need no pixels; raises Refused. (Duplicates are the library's check, made
    under its lock when the object is stored.) ``num_negatives``: the library's negative views,
    which count against ``max_objects`` as the objects do."""
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
    if library_full(names, name, max_objects, num_negatives):
        held = f"{len(names)} objects" + (f" and {num_negatives} negative views"
                                          if num_negatives else "")
        raise Refused(f"the library is full ({held}, max_objects={max_objects}): "
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


def _begin(response, library, num_views: int) -> None:
    """A response that says 'refused' until the request succeeds."""
    response.success = False
    response.num_views_used = 0
    if hasattr(response, "num_negative_views"):
        response.num_negative_views = 0
    response.names = list(library.snapshot.names)
    response.view_feedback = view_feedback(num_views)


def _num_negatives(library, name: str) -> int:
    """Object ``name``'s negative views now (0 when it is not stored)."""
    return next((int(m) for n, _, m in library.counts() if n == name), 0)


def _refuse(response, refusal: Refused) -> None:
    response.message = refusal.message
    for i, note in refusal.notes.items():
        if i < len(response.view_feedback):
            response.view_feedback[i].note = note


def _succeed(response, snapshot, embedding, message: str, num_negatives: int = 0) -> None:
    n = len(embedding.agreement)
    response.success = True
    response.num_views_used = n
    if hasattr(response, "num_negative_views"):
        response.num_negative_views = int(num_negatives)
    response.names = list(snapshot.names)
    response.view_feedback = view_feedback(n, embedding.agreement)
    outliers = [f.index for f in response.view_feedback if f.note]
    response.message = message
    if outliers:
        response.message += (f"; views {outliers} disagree with the others: check they show the "
                             "same object")


def _embed(embed_views: Callable, views):
    try:
        return embed_views(views)
    except ValueError as exc:
        raise Refused(f"the views could not be embedded: {exc}") from None


@contextmanager
def _storing(library):
    """The library's errors while storing, as refusals that say what went wrong."""
    try:
        yield
    except LibraryError as exc:
        raise Refused(str(exc)) from None
    except OSError as exc:
        raise Refused(f"storing the object in {library.directory} failed: {exc}") from None


def store_new(name: str, views, replace: bool, library, embed_views: Callable):
    """Embed ``views`` (decoded arrays) and store them as object ``name``; (snapshot, embedding,
    message) or Refused."""
    replaced = name in library.snapshot.names
    embedding = _embed(embed_views, views)
    with _storing(library):
        snapshot = library.add(name, views, embedding, replace=replace)
    n = len(views)
    verb = "replaced" if replaced else "registered"
    return snapshot, embedding, f"{verb} {name!r} from {n} view{'s' if n != 1 else ''}"


def store_more(name: str, views, library, embed_views: Callable):
    """Append ``views`` to object ``name`` and re-embed it from all its views; (snapshot,
    embedding, message) or Refused."""
    with _storing(library):
        validate_name(name)
        snapshot, embedding = library.append_views(
            name, views, lambda all_views: _embed(embed_views, all_views), MAX_VIEWS)
    total = len(embedding.agreement)
    return snapshot, embedding, (f"added {len(views)} view{'s' if len(views) != 1 else ''} to "
                                 f"{name!r}, now {total} views")


def register(request, response, library, embed_views: Callable, max_objects: int):
    """Carry out a RegisterObject request against ``library`` (an ObjectLibrary) with
    ``embed_views`` (Detector.embed_views). Returns the new snapshot, or None if refused."""
    _begin(response, library, len(request.views))
    try:
        check_request(request.name, len(request.views), library.snapshot.names, max_objects,
                      total_negatives(library))
        views = decode_views(request.views)
        snapshot, embedding, message = store_new(request.name, views, request.replace, library,
                                                 embed_views)
    except Refused as refusal:
        _refuse(response, refusal)
        return None
    _succeed(response, snapshot, embedding, message)
    return snapshot


def check_negatives(name: str, num_new: int, library, max_objects: int) -> None:
    """The checks of negative views for object ``name`` that need no pixels; raises Refused:
    a bad or unknown name, none sent, more than MAX_NEGATIVES in all, or more rows than
    ``max_objects`` (objects and all negative views) in every frame's network call."""
    try:
        validate_name(name)
    except LibraryError as exc:
        raise Refused(str(exc)) from None
    counts = {n: m for n, _, m in library.counts()}
    if name not in counts:
        known = ", ".join(counts) or "none"
        raise Refused(f"no object named {name!r} (registered: {known}): register the object "
                      "first, then the look-alikes it is not as its negative views")
    if num_new == 0:
        raise Refused(f"no views: send 1..{MAX_NEGATIVES} sensor_msgs/Image views of the "
                      "look-alike in 'views'")
    had = int(counts[name])
    if had + num_new > MAX_NEGATIVES:
        raise Refused(f"{name!r} has {_plural(had, 'negative view')}; {num_new} more make "
                      f"{had + num_new}, over the limit of {MAX_NEGATIVES} per object: remove "
                      "the object's negatives by registering it again with replace, or send "
                      "fewer")
    rows = len(counts) + sum(int(m) for m in counts.values())
    if max_objects and rows + num_new > max_objects:
        raise Refused(f"{len(counts)} objects and {rows - len(counts)} negative views are "
                      f"{rows} rows of every frame's network call; {num_new} more exceed "
                      f"max_objects={max_objects}: raise max_objects or remove an object")


def store_negatives(name: str, views, library, embed_views: Callable, token_dim: int):
    """Store decoded ``views`` as negative views of object ``name``, each embedded alone and
    checked (runtime/negatives.check_negative: not the object itself, not one too many);
    (snapshot, message) or Refused naming the view refused. ``token_dim``: the model's token
    size D (0: the stored per-view tokens' [N, D])."""
    first = _num_negatives(library, name)

    def embed_one(view):
        return _embed(embed_views, [view]).vector

    def check(arrays, vector, existing):
        per_view = arrays.get("per_view")
        if per_view is None:
            raise Refused(f"{name!r} was stored without per-view embeddings: add a view to it "
                          "(which re-embeds it), then its negative views")
        try:
            check_negative(per_view, arrays["vector"], vector, token_dim or per_view.shape[1],
                           existing)
        except NegativeError as exc:
            index = existing - first
            raise Refused(f"negative view {index} refused, nothing stored: {exc}",
                          {index: str(exc)}) from None

    with _storing(library):
        snapshot = library.add_negatives(name, views, embed_one, check)
    total = _num_negatives(library, name)
    return snapshot, (f"added {_plural(len(views), 'negative view')} to {name!r} (look-alikes "
                      f"it is not), now {_plural(total, 'negative view')}")


def _succeed_negatives(response, snapshot, library, name: str, message: str) -> None:
    """A response of stored negative views: the object's views (unchanged) and feedback."""
    agreement = library.embedding_arrays(name).get("agreement")
    n = next((int(v) for n_, v, _ in library.counts() if n_ == name), 0)
    response.success = True
    response.num_views_used = n
    response.num_negative_views = _num_negatives(library, name)
    response.names = list(snapshot.names)
    response.view_feedback = view_feedback(n, agreement)
    response.message = message


def add_negatives(request, response, library, embed_views: Callable, token_dim: int,
                  max_objects: int = 0):
    """Carry out an AddViews request with ``negative``: the views are stored as negative views
    of the object (its own views and embedding are kept). Returns the new snapshot, or None if
    refused."""
    _begin(response, library, len(request.views))
    try:
        check_negatives(request.name, len(request.views), library, max_objects)
        views = decode_views(request.views)
        snapshot, message = store_negatives(request.name, views, library, embed_views,
                                            token_dim)
    except Refused as refusal:
        _refuse(response, refusal)
        return None
    _succeed_negatives(response, snapshot, library, request.name, message)
    return snapshot


def add_views(request, response, library, embed_views: Callable, token_dim: int = 0,
              max_objects: int = 0):
    """Carry out an AddViews request: the views are appended to the stored ones and the object
    re-embedded from all of them (with ``negative``: stored as its negative views instead, see
    add_negatives; ``token_dim`` is the model's, ``max_objects`` the node's). Returns the new
    snapshot, or None if refused."""
    if getattr(request, "negative", False):
        return add_negatives(request, response, library, embed_views, token_dim, max_objects)
    _begin(response, library, len(request.views))
    try:
        if len(request.views) == 0:
            raise Refused(f"no views: send 1..{MAX_VIEWS} sensor_msgs/Image views in 'views'")
        views = decode_views(request.views)
        snapshot, embedding, message = store_more(request.name, views, library, embed_views)
    except Refused as refusal:
        _refuse(response, refusal)
        return None
    _succeed(response, snapshot, embedding, message, _num_negatives(library, request.name))
    return snapshot


def get_object_views(request, response, library):
    """Fill a GetObjectViews response with the stored views of ``request.name``."""
    response.success = False
    try:
        validate_name(request.name)
        obj = library.stored(request.name)
        views = library.views(request.name)
        negatives = library.negative_views(request.name)
    except LibraryError as exc:
        response.message = str(exc)
        return response
    except (OSError, ValueError) as exc:
        response.message = f"reading the views of {request.name!r} failed: {exc}"
        return response
    response.success = True
    response.model_id = obj.model_id
    response.created = obj.created
    response.views = [view_to_image_msg(v) for v in views]
    response.negative_views = [view_to_image_msg(v) for v in negatives]
    response.message = f"{_plural(len(views))} of {request.name!r}"
    if negatives:
        response.message += f" and {_plural(len(negatives), 'negative view')}"
    return response


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
    entries = library.counts()  # one state: names, views and negatives together
    response.success = True
    response.model_id = model_id
    response.names = [n for n, _, _ in entries]
    response.num_views = [int(v) for _, v, _ in entries]
    response.num_negative_views = [int(m) for _, _, m in entries]
    response.message = f"{len(entries)} object{'s' if len(entries) != 1 else ''}"
    if library.skipped:
        response.message += f"; unreadable entries skipped: {library.skipped}"
    return response


def decode_mask(msg) -> Optional[np.ndarray]:
    """RegisterFromCamera's mask: None when empty (0x0), else a mono8 HxW array; Refused if it
    is not mono8 (or 8UC1) or its layout is wrong."""
    if msg.width == 0 and msg.height == 0 and len(msg.data) == 0:
        return None
    if str(msg.encoding).lower() not in ("mono8", "8uc1"):
        raise Refused(f"the mask's encoding is {msg.encoding!r}: send mono8 (non-zero = object)")
    try:
        check_layout(msg, 1, np.uint8, len(msg.data))
        if msg.width * msg.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{msg.width}x{msg.height} is too large")
        return msg_pixels(msg, 1, np.uint8)
    except ValueError as exc:
        raise Refused(f"bad mask: {exc}") from None


def camera_view(request, camera, max_age_s: float, max_pixels: int,
                object_mask: Optional[Callable] = None):
    """The view RegisterFromCamera asks for: (view array, header of its frame, box used), cut
    from ``camera``'s newest frame; Refused if there is none, it is too old, or the box/mask
    do not fit it. With a box and no mask, ``object_mask(frame, box)`` (the model's rule for
    views without alpha, Detector.object_mask) may find the object in the box: the view is
    then RGBA with that mask as alpha."""
    newest = camera.newest
    if newest is None:
        raise Refused(f"no frame received yet from camera {camera.resolved or camera.topic}: is "
                      "it publishing?")
    msg, arrived = newest
    age = time.monotonic() - arrived
    if max_age_s > 0 and age > max_age_s:
        raise Refused(f"the newest frame from {camera.resolved} is {age:.1f} s old (limit "
                      f"register_max_age={max_age_s:g} s): is the camera still publishing?")
    mask = decode_mask(request.mask)
    try:
        rgb = decode_frame(msg, max_pixels)
    except ValueError as exc:
        raise Refused(f"the newest frame from {camera.resolved} cannot be used: {exc}") from None
    box = request.box
    xywh = (box.x_offset, box.y_offset, box.width, box.height)
    if mask is None and object_mask is not None and box.width > 0 and box.height > 0:
        try:
            mask = object_mask(rgb, clip_box(xywh, rgb.shape[1], rgb.shape[0]))
        except CropError as exc:
            raise Refused(str(exc)) from None
    try:
        view, used = crop_view(rgb, xywh, mask)
    except CropError as exc:
        raise Refused(str(exc)) from None
    w, h = used[2], used[3]
    if max(w, h) > MAX_VIEW_SIDE or w * h > MAX_VIEW_PIXELS:  # what a stored view may be
        raise Refused(f"the box is {w}x{h} pixels, over the view limits ({MAX_VIEW_SIDE} a side, "
                      f"{MAX_VIEW_PIXELS} pixels): draw a tighter box around the object")
    return view, msg.header, used


def register_from_camera(request, response, library, embed_views: Callable, cameras,
                         max_objects: int, max_age_s: float, max_pixels: int,
                         object_mask: Optional[Callable] = None, token_dim: int = 0):
    """Carry out a RegisterFromCamera request: a view cut from the newest frame of the named
    camera registers a new object (or, with ``append``, is added to an existing one; with
    ``negative``, is stored as a negative view of an existing one: ``token_dim`` is the
    model's). Returns the new snapshot, or None if refused."""
    negative = bool(getattr(request, "negative", False))
    _begin(response, library, 1)
    try:
        if request.append and request.replace:
            raise Refused("set either replace (a new object) or append (more views), not both")
        if negative and (request.append or request.replace):
            raise Refused("negative stores the view as a look-alike of the existing object "
                          f"{request.name!r}: leave replace and append unset")
        if negative:
            check_negatives(request.name, 1, library, max_objects)
        elif request.append:
            validate_name(request.name)
        else:
            check_request(request.name, 1, library.snapshot.names, max_objects,
                          total_negatives(library))
        try:
            camera = find_camera(cameras, request.camera)
        except LookupError as exc:
            raise Refused(str(exc)) from None
        view, header, used = camera_view(request, camera, max_age_s, max_pixels, object_mask)
        response.frame_header = header
        response.box.x_offset, response.box.y_offset = used[0], used[1]
        response.box.width, response.box.height = used[2], used[3]
        embedding = None
        if negative:
            snapshot, message = store_negatives(request.name, [view], library, embed_views,
                                                token_dim)
        elif request.append:
            snapshot, embedding, message = store_more(request.name, [view], library, embed_views)
        else:
            snapshot, embedding, message = store_new(request.name, [view], request.replace,
                                                     library, embed_views)
    except (Refused, LibraryError) as refusal:
        _refuse(response, refusal if isinstance(refusal, Refused) else Refused(str(refusal)))
        return None
    where = f" (frame of {camera.resolved}, box x={used[0]} y={used[1]} {used[2]}x{used[3]})"
    if negative:
        _succeed_negatives(response, snapshot, library, request.name, message + where)
    else:
        _succeed(response, snapshot, embedding, message + where,
                 _num_negatives(library, request.name))
    return snapshot
