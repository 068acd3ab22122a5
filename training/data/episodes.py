"""Episode sampler: the batches the training loop and the evaluation consume.

An episode is C objects (each with N reference views `views_a`, and N DISJOINT views `views_b` of
the same objects for the contrastive loss) and B scenes with per-object cell targets. Each scene
contains some of the episode's objects; the others are absent from it (negatives). Scenes are
either pre-rendered PyBullet tabletop scenes (`render.py` shards; the objects visible in them
become episode objects) or composites made on the fly (`compose.py`: PyBullet cut-outs from other
orientations than the reference views, and Tux Paint photo cut-outs with perspective warps, on
real-photo or procedural backgrounds), plus distractor objects that are not episode objects.

Cell-positive rule (targets[b, c, r, col], grid cell = stride x stride pixels of the final
letterboxed scene):
  * visible pixels of object c = pixels where c is the topmost object (occluded pixels do not
    count); an object with fewer than `min_visible_pixels` counts as absent: its targets are all 0
    and present[b, c] is False;
  * a cell is positive for object c if c's visible pixels cover >= `cell_positive_coverage` of the
    cell's area;
  * for every present object, the cell holding the most of its visible pixels is positive too, so
    a small object always has at least one positive cell.

Views and scenes are RGB uint8. Views are letterboxed to view_size with the object either on
plain gray 114 (alpha < 128 -> 114: exactly the runtime's view rule) or alpha-blended onto a
random background; scenes are letterboxed into scene_size with gray 114 padding.
"""
from __future__ import annotations

import glob
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from training.data import sources
from training.data.compose import ALPHA_VISIBLE, ComposeConfig, color_jitter, compose_scene, perspective_warp

PAD_VALUE = 114  # letterbox_pad_value of model.json
RENDER_HINT = ("python -m training.data.render --split {split} --views-per-object 16 --view-size 96 "
               "--scenes 600 --scene-size 256 256 --workers 2 --out {data_dir}/pybullet")


@dataclass
class EpisodeConfig:
    split: str = "train"
    objects_per_episode: int = 16          # C
    views_per_object: int = 8              # N (views_a and views_b each)
    view_size: int = 96                    # V
    scenes_per_episode: int = 4            # B
    scene_size: tuple = (256, 256)         # H, W
    stride: int = 16
    tabletop_fraction: float = 0.5         # share of scenes from pre-rendered tabletop shards
    min_visible_pixels: int = 20
    cell_positive_coverage: float = 0.25
    seed: int = 0
    data_dir: str = "data"
    tuxpaint_fraction: float = 0.3         # share of filler objects that are Tux Paint photo stamps
    view_background_prob: float = 0.5      # views on a random background (else plain gray)
    max_composite_objects: int = 8         # episode objects pasted into one composite
    max_distractors: int = 3               # non-episode objects pasted into one composite
    compose: ComposeConfig = field(default_factory=ComposeConfig)

    def __post_init__(self):
        self.scene_size = tuple(int(x) for x in self.scene_size)
        if isinstance(self.compose, dict):  # from a json config
            self.compose = ComposeConfig(**self.compose)


# ----------------------------------------------------------------------------- the cell rule

def cell_targets(index_map: np.ndarray, num_objects: int, stride: int, coverage: float,
                 min_visible_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-object cell targets from a map of VISIBLE object indices (-1 = none).

    Returns targets float32 [C, rows, cols] (rows = H // stride, cols = W // stride) and
    visible pixel counts int32 [C]. See the module docstring for the rule.
    """
    h, w = index_map.shape
    rows, cols = h // stride, w // stride
    c = num_objects
    idx = index_map.astype(np.int64)
    inside = (idx >= 0) & (idx < c)
    visible = np.bincount(idx[inside], minlength=c)[:c].astype(np.int32)
    grid = idx[:rows * stride, :cols * stride]
    valid = (grid >= 0) & (grid < c)
    cell = (np.arange(rows * stride)[:, None] // stride) * cols + np.arange(cols * stride)[None, :] // stride
    counts = np.bincount(cell[valid] * c + grid[valid], minlength=rows * cols * c).reshape(rows * cols, c)
    positive = counts >= coverage * stride * stride
    present = visible >= min_visible_pixels
    best = counts.argmax(axis=0)
    has_cell = counts[best, np.arange(c)] > 0
    positive[best[present & has_cell], np.arange(c)[present & has_cell]] = True
    positive[:, ~present] = False
    return positive.T.reshape(c, rows, cols).astype(np.float32), visible


# ----------------------------------------------------------------------------- letterbox

def letterbox(img: np.ndarray, size: tuple[int, int], pad, nearest: bool = False) -> np.ndarray:
    """Fit img into size (H, W) preserving aspect, centred, padded with pad (the runtime's rule)."""
    h, w = size
    ih, iw = img.shape[:2]
    scale = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    if (nw, nh) != (iw, ih):
        interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    out = np.full((h, w) + img.shape[2:], pad, img.dtype)
    oy, ox = (h - nh) // 2, (w - nw) // 2
    out[oy:oy + nh, ox:ox + nw] = img
    return out


def _square_canvas(rgba: np.ndarray, fill: float) -> np.ndarray:
    """Centre a cut-out in a transparent square so its longer side is `fill` of the square."""
    side = int(np.ceil(max(rgba.shape[:2]) / fill))
    out = np.zeros((side, side, 4), np.uint8)
    y0, x0 = (side - rgba.shape[0]) // 2, (side - rgba.shape[1]) // 2
    out[y0:y0 + rgba.shape[0], x0:x0 + rgba.shape[1]] = rgba
    return out


# ----------------------------------------------------------------------------- the sampler

class EpisodeSampler:
    def __init__(self, cfg: EpisodeConfig):
        self.cfg = cfg
        root = Path(cfg.data_dir) / "pybullet"
        self.views_dir = root / "views"
        hint = RENDER_HINT.format(split=cfg.split, data_dir=cfg.data_dir)
        self.object_pool = [i for i in sources.split_ids(cfg.split)
                            if (self.views_dir / f"{i:03d}.npz").is_file()]
        if not self.object_pool:
            raise FileNotFoundError(f"no pre-rendered object views for split {cfg.split!r} in "
                                    f"{self.views_dir}; render them first:\n  {hint}")
        self.stamp_pool = sources.tuxpaint_ids(cfg.split, cfg.data_dir) if cfg.tuxpaint_fraction > 0 else []
        self.photos = sources.photo_backgrounds(cfg.data_dir)
        self._views_cache: OrderedDict = OrderedDict()
        self.scene_images, self.scene_instances, self.scene_objects = self._load_scenes(root / "scenes")
        if cfg.tabletop_fraction > 0 and not len(self.scene_images):
            raise FileNotFoundError(f"no pre-rendered tabletop scenes {cfg.split}_*.npz in "
                                    f"{root / 'scenes'} (tabletop_fraction={cfg.tabletop_fraction}); "
                                    f"render them first:\n  {hint}")

    def _load_scenes(self, scenes_dir: Path):
        images, instances = [], []
        for path in sorted(glob.glob(str(scenes_dir / f"{self.cfg.split}_*.npz"))):
            if path.endswith(".tmp.npz"):
                continue
            with np.load(path, allow_pickle=False) as z:
                images.append(z["images"])
                instances.append(z["instances"])
        if not images:
            return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0, 1, 1), np.int16), []
        images, instances = np.concatenate(images), np.concatenate(instances)
        pool = set(self.object_pool)
        objects = []  # per scene: ids visible enough to be episode objects (and with views on disk)
        for inst in instances:
            ids, counts = np.unique(inst[inst >= 0], return_counts=True)
            objects.append([int(i) for i, n in zip(ids, counts)
                            if n >= self.cfg.min_visible_pixels and int(i) in pool])
        return images, instances, objects

    # -- object views --------------------------------------------------------------------------

    def _object_views(self, obj_id: int) -> np.ndarray:
        if obj_id not in self._views_cache:
            with np.load(self.views_dir / f"{obj_id:03d}.npz", allow_pickle=False) as z:
                self._views_cache[obj_id] = z["rgba"]
            if len(self._views_cache) > 1024:  # bounded: DataLoader workers each hold one
                self._views_cache.popitem(last=False)
        return self._views_cache[obj_id]

    def _stamp_view(self, stamp_id: str, rng: np.random.Generator) -> np.ndarray:
        """A new 'view' of a single-photo stamp: perspective warp, small rotation, jitter, square."""
        rgba = perspective_warp(sources.load_stamp(stamp_id, self.cfg.data_dir), rng, 0.15)
        angle = float(rng.uniform(-20, 20))
        h, w = rgba.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        side = int(np.hypot(h, w)) + 1
        m[0, 2] += side / 2 - w / 2
        m[1, 2] += side / 2 - h / 2
        rgba = cv2.warpAffine(rgba, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
        ys, xs = np.nonzero(rgba[:, :, 3] >= ALPHA_VISIBLE)
        rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy()
        rgba[:, :, :3] = color_jitter(rgba[:, :, :3], rng, 0.1).astype(np.uint8)
        return rgba

    def _finish_view(self, rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """RGBA cut-out -> RGB V x V: on plain gray (runtime rule) or blended on a background."""
        v = self.cfg.view_size
        if rgba.shape[0] != rgba.shape[1]:
            rgba = _square_canvas(rgba, float(rng.uniform(0.6, 0.8)))
        rgba = letterbox(rgba, (v, v), 0)
        if rng.random() < self.cfg.view_background_prob:
            bg = sources.random_background(v, v, rng, self.photos).astype(np.float32)
            a = rgba[:, :, 3:].astype(np.float32) / 255.0
            return np.clip(bg * (1 - a) + rgba[:, :, :3] * a + 0.5, 0, 255).astype(np.uint8)
        return np.where(rgba[:, :, 3:] >= ALPHA_VISIBLE, rgba[:, :, :3], np.uint8(PAD_VALUE))

    def _view_sets(self, obj, rng):
        """(views_a, views_b, spare cut-outs for composites) for one object."""
        n = self.cfg.views_per_object
        if isinstance(obj, str):
            a = [self._stamp_view(obj, rng) for _ in range(n)]
            b = [self._stamp_view(obj, rng) for _ in range(n)]
            return a, b, None
        views = self._object_views(obj)
        order = rng.permutation(len(views))
        if len(views) < 2 * n:  # cannot be disjoint: keep a and b apart as far as possible
            half = max(1, len(views) // 2)
            a_idx = rng.choice(order[:half], n)
            b_idx = rng.choice(order[half:] if len(views) > 1 else order, n)
        else:
            a_idx, b_idx = order[:n], order[n:2 * n]
        spare = [i for i in order if i not in set(a_idx.tolist())]  # never a reference orientation
        return [views[i] for i in a_idx], [views[i] for i in b_idx], spare

    def _cutout(self, obj, spare, rng):
        if isinstance(obj, str):
            return sources.load_stamp(obj, self.cfg.data_dir), True
        views = self._object_views(obj)
        idx = spare[rng.integers(len(spare))] if spare else rng.integers(len(views))
        return views[idx], False

    # -- scenes --------------------------------------------------------------------------------

    def _random_pool_object(self, rng, exclude):
        for _ in range(100):
            if self.stamp_pool and rng.random() < self.cfg.tuxpaint_fraction:
                obj = self.stamp_pool[rng.integers(len(self.stamp_pool))]
            else:
                obj = int(self.object_pool[rng.integers(len(self.object_pool))])
            if obj not in exclude:
                return obj
        return None

    def _photometric(self, img: np.ndarray, rng) -> np.ndarray:
        out = color_jitter(img, rng, self.cfg.compose.global_jitter)
        if rng.random() < self.cfg.compose.blur_prob:
            out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.2)))
        out = out + rng.normal(0, rng.uniform(0, self.cfg.compose.noise_max), out.shape)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _composite_size(self, rng) -> tuple[int, int]:
        """Source size of a composite: the scene's aspect or a common camera aspect (letterboxed)."""
        h, w = self.cfg.scene_size
        aspect = w / h if rng.random() < 0.5 else float(rng.choice([4 / 3, 16 / 9, 3 / 4, 1.0]))
        return (h, max(8, round(h * aspect))) if aspect <= w / h else (max(8, round(w / aspect)), w)

    def sample(self, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        C, B = cfg.objects_per_episode, cfg.scenes_per_episode
        H, W = cfg.scene_size
        tabletop = (rng.random(B) < cfg.tabletop_fraction) if len(self.scene_images) else np.zeros(B, bool)

        # 1. Episode objects: a share of the visible objects of each tabletop scene (the rest stay
        #    in the scene as distractors), then pool objects (PyBullet and Tux Paint) as fillers.
        objects: list = []
        chosen_scenes = []
        n_tab = int(tabletop.sum())
        for _ in range(n_tab):
            s = int(rng.integers(len(self.scene_images)))
            chosen_scenes.append(s)
            # Up to 2/3 of the episode's objects come from tabletop scenes, the rest are fillers.
            quota_max = max(1, (2 * C) // (3 * n_tab))
            quota = int(rng.integers(max(1, quota_max // 2), quota_max + 1))
            candidates = [o for o in self.scene_objects[s] if o not in objects]
            take = min(quota, len(candidates), C - 1 - len(objects))
            if take > 0:
                objects += [candidates[i] for i in rng.choice(len(candidates), take, replace=False)]
        while len(objects) < C:
            obj = self._random_pool_object(rng, set(objects))
            if obj is None:
                raise ValueError(f"split {cfg.split!r} has fewer than C={C} objects")
            objects.append(obj)
        index_of = {obj: c for c, obj in enumerate(objects)}

        # 2. Views: a and b disjoint; spare orientations for composites exclude the reference ones.
        views_a = np.zeros((C, cfg.views_per_object, cfg.view_size, cfg.view_size, 3), np.uint8)
        views_b = np.zeros_like(views_a)
        spares = []
        for c, obj in enumerate(objects):
            a, b, spare = self._view_sets(obj, rng)
            views_a[c] = [self._finish_view(x, rng) for x in a]
            views_b[c] = [self._finish_view(x, rng) for x in b]
            spares.append(spare)

        # 3. Scenes and their maps of visible episode-object indices.
        scenes = np.zeros((B, H, W, 3), np.uint8)
        targets = np.zeros((B, C, H // cfg.stride, W // cfg.stride), np.float32)
        visible = np.zeros((B, C), np.int32)
        # Share of each object left visible by the objects on top of it: known for composites
        # (compose_scene counts what it painted), NaN for tabletop renders and objects not pasted.
        visible_fraction = np.full((B, C), np.nan, np.float32)
        lut = np.full(1001, -1, np.int16)  # random_urdf id -> episode index (index -1 -> last: -1)
        for obj, c in index_of.items():
            if not isinstance(obj, str):
                lut[obj] = c
        shown = np.zeros(C, bool)
        tab_iter = iter(chosen_scenes)
        for b in range(B):
            if tabletop[b]:
                s = next(tab_iter)
                img, inst = self.scene_images[s], self.scene_instances[s]
                if rng.random() < 0.5:
                    img, inst = img[:, ::-1], inst[:, ::-1]
                index_map = lut[inst.astype(np.int64)]
                img = self._photometric(img, rng)
            else:
                # Prefer objects no scene has shown yet, so most episode objects appear somewhere.
                k_max = max(1, min(cfg.max_composite_objects, C - 1))  # C - 1: someone is absent
                k = int(rng.integers(max(1, k_max // 2), k_max + 1))
                weights = np.where(shown, 1.0, 4.0)
                members = rng.choice(C, k, replace=False, p=weights / weights.sum()).tolist()
                cutouts, warp, labels = [], [], []
                for c in members:
                    cut, w = self._cutout(objects[c], spares[c], rng)
                    cutouts.append(cut), warp.append(w), labels.append(c)
                for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
                    obj = self._random_pool_object(rng, set(objects))
                    if obj is not None:
                        cut, w = self._cutout(obj, None, rng)
                        cutouts.append(cut), warp.append(w), labels.append(-1)
                order = rng.permutation(len(cutouts))
                sh, sw = self._composite_size(rng)
                bg = sources.random_background(sh, sw, rng, self.photos)
                img, pasted, painted = compose_scene(bg, [cutouts[i] for i in order], rng,
                                                     cfg.compose, [warp[i] for i in order])
                paste_label = np.array([labels[i] for i in order] + [-1], np.int16)
                index_map = paste_label[pasted.astype(np.int64)]  # -1 -> last entry -> -1
                for j, i in enumerate(order):  # each member is pasted once; distractors are -1
                    if labels[i] >= 0 and painted[j]:
                        visible_fraction[b, labels[i]] = np.count_nonzero(index_map == labels[i]) / painted[j]
            scenes[b] = letterbox(np.ascontiguousarray(img), (H, W), PAD_VALUE)
            index_map = letterbox(np.ascontiguousarray(index_map), (H, W), -1, nearest=True)
            targets[b], visible[b] = cell_targets(index_map, C, cfg.stride, cfg.cell_positive_coverage,
                                                  cfg.min_visible_pixels)
            shown |= visible[b] >= cfg.min_visible_pixels
        return {
            "views_a": views_a,
            "views_b": views_b,
            "scenes": scenes,
            "targets": targets,
            "present": visible >= cfg.min_visible_pixels,
            "object_ids": objects,
            "visible_pixels": visible,
            "visible_fraction": visible_fraction,
        }


def make_eval_set(split: str, num_scenes: int, cfg: EpisodeConfig | None = None, seed: int = 1234) -> list[dict]:
    """Deterministic held-out episodes (same dict format as `EpisodeSampler.sample`).

    ceil(num_scenes / scenes_per_episode) episodes drawn from `split` with a fixed seed; the same
    arguments and data on disk give the same arrays on every machine and run.
    """
    cfg = replace(cfg or EpisodeConfig(), split=split)
    sampler = EpisodeSampler(cfg)
    rng = np.random.default_rng([seed, sources.SPLITS[split][0]])
    n_episodes = -(-num_scenes // cfg.scenes_per_episode)
    return [sampler.sample(rng) for _ in range(n_episodes)]
