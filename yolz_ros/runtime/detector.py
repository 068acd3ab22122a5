"""The Python API of the runtime: embed reference views, detect registered objects in images.

    det = Detector()                                    # the shipped model, best backend here
    mug = det.embed_views([view1, view2, view3])        # RGB / RGBA uint8 arrays
    result = det.detect(rgb, np.stack([mug.vector]))    # probabilities [K, rows, cols]
    for peaks in det.peaks(result): ...

No ROS and no torch here; the node and the CLIs build on this.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from yolz_ros.runtime.backends import create_backend
from yolz_ros.runtime.decode import Peak, decode_peaks, regressed_boxes, with_regressed_boxes
from yolz_ros.runtime.foreground import box_mask, view_alpha
from yolz_ros.runtime.geometry import ALPHA_VISIBLE, Letterbox, cell_boxes, letterbox, prepare_view
from yolz_ros.runtime.look_closer import LOOK_ZOOM, MAX_LOOK_CLOSER, choose_tiles
from yolz_ros.runtime.model_info import ModelInfo
from yolz_ros.runtime.negatives import stack_negatives, suppress
from yolz_ros.runtime.object_tokens import object_tokens, token_mask
from yolz_ros.runtime.zoom_pass import (MAX_ZOOM, MIN_ZOOM, frame_span, pool_tile, tile_warp,
                                        zoom_tiles)

MIN_NORM = 1e-6  # a mean of views this short has no direction (views that cancel out)


@dataclass(frozen=True)
class ObjectEmbedding:
    vector: np.ndarray  # float32 [E = T * D]: the object's T unit tokens, flattened
    per_view: np.ndarray  # float32 [N, D]: each view's unit mean token
    agreement: np.ndarray  # float32 [N]: cosine of each view to the object's mean


@dataclass(frozen=True)
class DetectionResult:
    probabilities: np.ndarray  # float32 [K, rows, cols]; cells wholly in padding are 0
    letterbox: Letterbox
    boxes: np.ndarray  # float32 [rows, cols, 4]: each cell's own box, x0, y0, x1, y1 source px
    latency_ms: float  # letterbox + inference + masking
    # With a box head: float32 [rows, cols, 4], the regressed visible box (x0, y0, x1, y1 source
    # pixels, clipped to the image) of whatever object covers each cell; an object's box is the
    # one at its peak (Detector.peaks). None for a model without one.
    object_boxes: Optional[np.ndarray] = None
    passes: int = 0  # network passes that made it (0: nothing registered; 1: the frame pass)


class Detector:
    def __init__(self, model_dir=None, backend: str = "auto", device: str = "cuda",
                 precision: str = "fp16", max_objects: int = 64, cache_dir=None,
                 num_threads: int = 0, logger: Optional[logging.Logger] = None,
                 embed_threads: Optional[int] = None):
        """``num_threads``: ONNX Runtime's intra-op threads (0: all cores); ``embed_threads``
        those of the embedder alone (None: the same), e.g. 1 where registration must leave the
        cores to detection (the node)."""
        self.info = ModelInfo.load(model_dir)
        self.model_id = self.info.model_id
        self.max_objects = int(max_objects)
        self.backend = create_backend(self.info, backend, device, precision, self.max_objects,
                                      cache_dir, num_threads, logger, embed_threads)
        self.backend_name = self.backend.name
        h, w = self.info.input_size
        # Preprocessing buffers, allocated once; the lock makes concurrent detect() calls safe.
        self._canvas = np.empty((h, w, 3), np.uint8)
        self._input = np.empty((1, 3, h, w), np.float32)
        self._lock = threading.Lock()
        self._cells: Tuple[Optional[Letterbox], Optional[tuple]] = (None, None)
        self._scan_next = 0  # look_closer's scan over its tiles goes on across frames

    # ------------------------------------------------------------------ registration
    def embed_views(self, views: Sequence[np.ndarray]) -> ObjectEmbedding:
        """Embed an object from its reference views (each HxWx3 RGB or HxWx4 RGBA uint8)."""
        if views is None or len(views) == 0:
            raise ValueError("no views given: send at least one RGB or RGBA image of the object "
                             f"(the model was trained with {self.info.views_per_object})")
        split = [_split_view(i, view) for i, view in enumerate(views)]
        return self._embed_tokens(split)

    def object_mask(self, frame: np.ndarray, box) -> Optional[np.ndarray]:
        """The object's mask [H, W] (uint8, 255 = object) inside a box (x, y, w, h) drawn on a
        frame, by the model's rule for views without alpha: GrabCut from the box under
        'grabcut', None under the centre rule (or where GrabCut finds nothing)."""
        if self.info.tokens.no_alpha != "grabcut":
            return None
        return box_mask(frame, box)

    def _embed_tokens(self, split) -> ObjectEmbedding:
        """Tokens of every view at every view size -> T object tokens, flattened (yolz-model/2)."""
        spec, pad = self.info.tokens, self.info.pad_value
        # a view without alpha: the model's rule finds the object in it (once, for every size)
        split = [(rgb, view_alpha(rgb, alpha, spec.no_alpha)) for rgb, alpha in split]
        pooled = []  # per view size: [N, g*g, D] tokens and [N, g*g] masks
        for s in self.info.view_sizes:
            batch = np.empty((len(split), 3, s, s), np.float32)
            masks = []
            for i, (rgb, alpha) in enumerate(split):
                batch[i] = prepare_view(rgb, alpha, s, pad).transpose(2, 0, 1)
                masks.append(token_mask(alpha, rgb.shape[:2], s, spec.patch,
                                        spec.min_alpha_fraction,
                                        spec.no_alpha_centre).reshape(-1))
            tokens = np.asarray(self.backend.embed(batch), np.float32)  # [N, D, g, g]
            pooled.append((tokens.reshape(len(split), spec.dim, -1).transpose(0, 2, 1),
                           np.stack(masks)))
        all_tokens = np.concatenate([t[m] for t, m in pooled])
        slots, _ = object_tokens(all_tokens, spec.count)
        per_view = np.stack([np.concatenate([t[i][m[i]] for t, m in pooled]).mean(axis=0)
                             for i in range(len(split))])
        per_view /= np.maximum(np.linalg.norm(per_view, axis=1, keepdims=True), MIN_NORM)
        agreement = per_view @ slots[0]
        return ObjectEmbedding(slots.reshape(-1), per_view.astype(np.float32),
                               agreement.astype(np.float32))

    # ------------------------------------------------------------------ detection
    def detect(self, rgb: np.ndarray, embeddings: np.ndarray, zoom: float = 1.0,
               negatives: Optional[Sequence[Optional[np.ndarray]]] = None,
               look_closer: int = 0) -> DetectionResult:
        """Probabilities of K objects (embeddings float32 [K, E]) in an RGB uint8 HxWx3 image.
        ``zoom`` > 1 adds a second pass over tiles of the frame at that zoom (1.5: 4 more
        network passes, 2: 9; runtime/zoom_pass.py): small objects found more often.
        ``negatives``: per object None or the embeddings [M, E] of look-alikes it is not
        (runtime/negatives.py); scored in the same call, K + M <= max_objects.
        ``look_closer`` N > 0: up to N more passes, 2.5x tiles on the frame pass's most undecided
        candidates (runtime/look_closer.py); 0 = off (instead of zoom, not with it)."""
        start = time.perf_counter()
        rgb, objects, k, owners = self._inputs(rgb, embeddings, negatives)
        if not MIN_ZOOM <= float(zoom) <= MAX_ZOOM:
            raise ValueError(f"zoom must be between {MIN_ZOOM} (off) and {MAX_ZOOM}, got {zoom}")
        look_closer = int(look_closer)
        if not 0 <= look_closer <= MAX_LOOK_CLOSER:
            raise ValueError(f"look_closer must be 0 (off) to {MAX_LOOK_CLOSER} tiles, got "
                             f"{look_closer}")
        if look_closer and zoom > MIN_ZOOM:
            raise ValueError("look_closer and zoom are two ways to look closer: set one of them")
        rows, cols = self.info.rows, self.info.cols
        object_boxes, passes = None, 0
        if k == 0:  # nothing registered: no need to run the network
            lb = Letterbox.fit(rgb.shape[:2], self.info.input_size)
            probs = np.zeros((0, rows, cols), np.float32)
            boxes, _ = self._cell_boxes(lb)
        else:
            with self._lock:
                probs, lb, object_boxes = self._frame_pass(rgb, objects)
                passes = 1
                if zoom > MIN_ZOOM:
                    passes += self._zoom_pass(rgb, lb, objects, float(zoom), probs)
                elif look_closer:
                    passes += self._look_closer(rgb, lb, objects, k, look_closer, probs)
            probs = suppress(probs[:k], probs[k:], owners)
            boxes, padding = self._cell_boxes(lb)
            probs[:, padding] = 0.0
        latency_ms = (time.perf_counter() - start) * 1e3
        return DetectionResult(probs, lb, boxes, latency_ms, object_boxes, passes)

    def detect_steps(self, rgb: np.ndarray, embeddings: np.ndarray, zoom: float = 2.0,
                     negatives: Optional[Sequence[Optional[np.ndarray]]] = None
                     ) -> Iterator[Tuple[int, int, DetectionResult]]:
        """The frame pass and then the zoom pass's tiles (``zoom`` 1 = the frame pass alone), one
        network pass per step: yields (passes done, passes total, the result so far) after each.
        Each pass takes the detector's lock on its own, so other detect() calls (the node's
        frames) run between them, and the caller can stop between any two (runtime/search.py).
        The last result equals ``detect(rgb, embeddings, zoom=zoom, negatives=negatives)``'s."""
        start = time.perf_counter()
        rgb, objects, k, owners = self._inputs(rgb, embeddings, negatives)
        if not MIN_ZOOM <= float(zoom) <= MAX_ZOOM:
            raise ValueError(f"zoom must be between {MIN_ZOOM} (off) and {MAX_ZOOM}, got {zoom}")
        if k == 0:
            raise ValueError("detect_steps needs at least one object")
        rgb = np.ascontiguousarray(rgb)
        with self._lock:
            probs, lb, object_boxes = self._frame_pass(rgb, objects)
        area = _image_area(lb)
        tiles = ([r for r in zoom_tiles(self.info.input_size, float(zoom)) if _overlaps(r, area)]
                 if zoom > MIN_ZOOM else [])
        total = 1 + len(tiles)
        boxes, padding = self._cell_boxes(lb)

        def so_far(passes):
            fused = suppress(probs[:k].copy(), probs[k:], owners)
            fused[:, padding] = 0.0
            return DetectionResult(fused, lb, boxes, (time.perf_counter() - start) * 1e3,
                                   object_boxes, passes)
        yield 1, total, so_far(1)
        for i, rect in enumerate(tiles):
            with self._lock:
                tile = self._tile_pass(rgb, lb, objects, rect)
            pool_tile(probs, tile, rect, self.info.stride)
            yield 2 + i, total, so_far(2 + i)

    def _inputs(self, rgb, embeddings, negatives):
        """Checked inputs: (rgb, the objects' rows with their negatives' after them, K, the
        negatives' owners); ValueError saying what is wrong."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
            raise ValueError(f"detect needs an RGB uint8 HxWx3 image, got {rgb.shape} {rgb.dtype}"
                             " (see yolz_ros.runtime.image for conversions)")
        objects = _check_embeddings(embeddings, self.info.embedding_dim, self.max_objects)
        k = len(objects)
        objects, owners = stack_negatives(objects, negatives)
        if len(objects) > self.max_objects:
            raise ValueError(f"{k} objects and {len(owners)} negative views: more than "
                             f"max_objects={self.max_objects} rows in one network call")
        return rgb, objects, k, owners

    def _frame_pass(self, rgb, objects):
        """The frame's own pass (caller holds the lock): probabilities [K, rows, cols] (a copy),
        the letterbox, the regressed boxes (None without a box head)."""
        _, lb = letterbox(rgb, self.info.input_size, self.info.pad_value, self._canvas)
        np.copyto(self._input[0], self._canvas.transpose(2, 0, 1))
        outputs = self.backend.detect(self._input, objects)
        # copies: a backend may reuse its output buffers on the next pass
        probs = np.array(outputs["probabilities"], np.float32)
        object_boxes = None
        if self.info.box_output is not None:
            object_boxes = regressed_boxes(outputs[self.info.box_output], lb, self.info.stride,
                                           rgb.shape[:2])
        return probs, lb, object_boxes

    def _zoom_pass(self, rgb, lb: Letterbox, objects, zoom: float, probs: np.ndarray) -> int:
        """The tiles' probabilities max-pooled into ``probs`` (caller holds the lock); the
        number of tiles."""
        area = _image_area(lb)
        tiles = [r for r in zoom_tiles(self.info.input_size, zoom) if _overlaps(r, area)]
        for rect in tiles:
            pool_tile(probs, self._tile_pass(rgb, lb, objects, rect), rect, self.info.stride)
        return len(tiles)

    def _look_closer(self, rgb, lb: Letterbox, objects, k: int, budget: int,
                     probs: np.ndarray) -> int:
        """Up to ``budget`` 2.5x tiles where the frame pass is undecided, max-pooled into
        ``probs`` (runtime/look_closer.py; caller holds the lock); the number of tiles.
        Candidates come from the objects' own maps (not their negatives')."""
        area = _image_area(lb)
        scan = [r for r in zoom_tiles(self.info.input_size, LOOK_ZOOM) if _overlaps(r, area)]
        tiles, self._scan_next = choose_tiles(
            probs[:k], self.info.default_threshold, budget, self.info.input_size, area,
            self.info.stride, scan, self._scan_next)
        for rect in tiles:
            pool_tile(probs, self._tile_pass(rgb, lb, objects, rect), rect, self.info.stride)
        return len(tiles)

    def _tile_pass(self, rgb, lb: Letterbox, objects, rect) -> np.ndarray:
        """One network pass over the tile ``rect`` (model-input px) of the source frame:
        probabilities [K, rows, cols] (a copy)."""
        h, w = self.info.input_size
        pad = self.info.pad_value
        rgb = np.ascontiguousarray(rgb)
        warp = tile_warp(rect, lb, (h, w))
        # the frame's edge pixels continue it (bilinear reads past them); where the tile
        # shows the letterbox's bands, the pad value, as in the frame's own pass
        cv2.warpAffine(rgb, warp, (w, h), dst=self._canvas, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
        u0, v0, u1, v1 = frame_span(warp, rgb.shape[:2])
        self._canvas[:max(v0, 0)] = pad
        self._canvas[max(v1, 0):] = pad
        self._canvas[:, :max(u0, 0)] = pad
        self._canvas[:, max(u1, 0):] = pad
        np.copyto(self._input[0], self._canvas.transpose(2, 0, 1))
        return np.array(self.backend.detect(self._input, objects)["probabilities"], np.float32)

    def peaks(self, result: DetectionResult, threshold: Optional[float] = None
              ) -> List[List[Peak]]:
        """Per object, its peaks (one per object instance, highest first; threshold default the
        model's). With a box head each peak's box is the regressed box at its peak cell, and a
        weaker peak whose box overlaps a stronger one's by IoU >= SAME_OBJECT_IOU is the same
        object and dropped; without one the box is the union of the region's cells."""
        t = self.info.default_threshold if threshold is None else float(threshold)
        found = [decode_peaks(grid, result.boxes, t) for grid in result.probabilities]
        if result.object_boxes is None:
            return found
        return [with_regressed_boxes(peaks, result.boxes, result.object_boxes, grid, t)
                for peaks, grid in zip(found, result.probabilities)]

    def _cell_boxes(self, lb: Letterbox):
        """Cell boxes and padding mask, recomputed only when the source size changes."""
        cached_lb, cells = self._cells
        if cached_lb != lb:
            boxes, padding = cell_boxes(lb, self.info.rows, self.info.cols, self.info.stride)
            boxes.setflags(write=False)  # shared by every result of this source size
            cells = (boxes, padding)
            self._cells = (lb, cells)
        return cells


def _image_area(lb: Letterbox):
    """The letterboxed image inside the model input: (x0, y0, x1, y1) model-input px."""
    return (lb.offset_x, lb.offset_y, lb.offset_x + lb.resized_width,
            lb.offset_y + lb.resized_height)


def _overlaps(rect, area) -> bool:
    return rect[2] > area[0] and rect[0] < area[2] and rect[3] > area[1] and rect[1] < area[3]


def _split_view(i: int, view) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    arr = np.asarray(view)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4) or 0 in arr.shape:
        raise ValueError(f"view {i}: need an HxWx3 RGB or HxWx4 RGBA uint8 image, got "
                         f"{arr.shape} {arr.dtype}")
    if arr.shape[2] == 3:
        return arr, None
    alpha = arr[:, :, 3]
    if not (alpha >= ALPHA_VISIBLE).any():
        raise ValueError(f"view {i} is fully transparent (every alpha < {ALPHA_VISIBLE}): "
                         "nothing of the object is visible")
    return arr[:, :, :3], alpha


def _check_embeddings(embeddings, dim: int, max_objects: int) -> np.ndarray:
    objects = np.ascontiguousarray(embeddings, np.float32)
    if objects.ndim != 2 or objects.shape[1] != dim:
        raise ValueError(f"embeddings must be float32 [K, {dim}], got shape {objects.shape}")
    if len(objects) > max_objects:
        raise ValueError(f"{len(objects)} objects, more than max_objects={max_objects}")
    if not np.isfinite(objects).all():
        raise ValueError("embeddings contain NaN or inf")
    return objects
