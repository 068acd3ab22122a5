"""Real-looking episodes: textured objects pasted into real photographs at the camera's 640x480.

The same generator makes the real-object benchmark (val: every model decision; test: the reported
numbers) and the training episodes (train split), so what the model learns is what it is judged on,
and no object, label photo or background photo crosses splits.

Objects: procedural products with photo/text labels rendered in 3D (products.py; families of 4
same-kind siblings), and real photo cut-outs (Debian tuxpaint-stamps, perspective-warped). Training
may add Sweet Home 3D models (sweethome.py), GCompris object photos and outdoor backgrounds
(gcompris.py) and robosuite's objects (robosuite_objects.py): RealConfig's *_per_episode fields,
0 by default (the benchmark's episodes do not change).
Episode: C objects — whole product families, so each object's siblings are in the episode as the
hardest negatives — with 8 reference views each, and S scenes. Each scene pastes 1-4 episode
objects (rendered from viewpoints >= 15 degrees from every reference view) and 0-3 distractors
from outside the episode onto a crop of a real photo; objects are 3-35% of the image height
(uniform), rotated a little (sometimes lying), mildly occluding each other, brightness/tint
jittered. Every (scene, episode object) is a query; objects absent from a scene are negatives.

Reference views come twice: `views_alpha` (RGBA, the object cut out, as a registration tool
delivers) and `views_photo` (RGB, the same view on a real background: a phone photo with no mask).

Cell labels follow episodes.cell_targets (the project's one cell rule) at stride 16 on the
480x640 scene: grid 30 x 40.

    python -m training.data.realbench --split val --episodes 30      # the validation benchmark
    python -m training.data.realbench --split test --episodes 50     # the test benchmark
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from training.data import photos as photo_source
from training.data import gcompris as gcompris_source
from training.data import products, sources
from training.data import robosuite_objects as robosuite_source
from training.data import sweethome as sweethome_source
from training.data.compose import color_jitter, crop_to_alpha, paste, perspective_warp
from training.data.episodes import cell_targets

VIEW_SIZE = 128
SCENE_SIZE = (480, 640)
STRIDE = 16
N_VIEWS = 8  # reference views stored per object (N = 1, 4, 8 use the first n)
RENDER = dict(n_views=12, n_instances=6, view_size=128, instance_size=224)
BENCH_SEED = {"val": 20261201, "test": 20261202, "train": 7}


@dataclass
class RealConfig:
    split: str = "val"
    families_per_episode: int = 2      # product families (FAMILY_SIZE members each)
    stamps_per_episode: int = 2        # real-photo cut-outs
    scenes_per_episode: int = 4
    min_height: float = 0.03           # object height / image height, uniform in between
    max_height: float = 0.35
    # Training with many small objects: this share of pasted objects takes a height in
    # small_height instead (20-60 px of 480; the benchmark keeps 0: its sizes stay uniform).
    small_prob: float = 0.0
    small_height: tuple = (20 / 480, 60 / 480)
    max_present: int = 4               # episode objects pasted per scene (at least 1)
    max_distractors: int = 3           # non-episode objects per scene
    overlap_prob: float = 0.2
    lying_prob: float = 0.15           # pasted rotated by ~90 degrees
    max_tilt: float = 15.0             # degrees of in-plane rotation otherwise
    min_visible_pixels: int = 20
    cell_positive_coverage: float = 0.25
    procedural_background_prob: float = 0.0  # training may add synthetic textures; benchmark: none
    # More object sources (training; 0 keeps an episode exactly as before): Sweet Home 3D models
    # (whole same-name families, e.g. several chairs) and GCompris real object photos (whole
    # families, e.g. the split's hammers), up to this many objects each per episode; and the share
    # of scenes on a GCompris outdoor photo instead of the photo pool.
    sweethome_per_episode: int = 0
    gcompris_per_episode: int = 0
    gcompris_background_prob: float = 0.0
    robosuite_per_episode: int = 0     # robosuite's textured objects (can, bread, milk in train)
    data_dir: str = "data"


def parse_sources(text: str) -> dict:
    """RealConfig fields of a '--sources' string: 'sweethome:4,gcompris:2,outdoor:0.2'."""
    fields = {"sweethome": ("sweethome_per_episode", int), "gcompris": ("gcompris_per_episode", int),
              "outdoor": ("gcompris_background_prob", float),
              "robosuite": ("robosuite_per_episode", int)}
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition(":")
        if name not in fields:
            raise ValueError(f"unknown source {name!r} (known: {', '.join(fields)})")
        field, kind = fields[name]
        out[field] = kind(value) if value else kind(4 if kind is int else 0.2)
    return out


SWEETHOME_FAMILY_MAX = 4  # members of one Sweet Home 3D family in an episode at most


class ObjectSource:
    """The objects of one split: products (rendered, cached) and tuxpaint photo stamps."""

    def __init__(self, split: str, data_dir: str, with_stamps: bool = True,
                 sweethome: bool = False, gcompris: bool = False, robosuite: bool = False):
        self.split, self.data_dir = split, data_dir
        self.products = products.product_ids(split)
        self.stamps = sources.tuxpaint_ids(split, data_dir) if with_stamps else []
        self.photos = photo_source.photo_pool(split, data_dir)
        if not self.photos:
            raise FileNotFoundError(f"no real photos for split {split!r}: see training/data/photos.py")
        # 'sh3d:<key>': Sweet Home 3D models whose renders are cached (never rendered here);
        # 'gc:<name>': GCompris object photos with a cut-out.
        self.sweethome = [f"sh3d:{k}" for k in sweethome_source.rendered_keys(split, data_dir)] \
            if sweethome else []
        self._sh_index = sweethome_source.catalog(data_dir)["models"] if sweethome else {}
        self.gcompris = [f"gc:{n}" for n in gcompris_source.object_names(split, data_dir)] \
            if gcompris else []
        self._gc_index = gcompris_source.index(data_dir)["objects"] if gcompris else {}
        self.outdoor = gcompris_source.backgrounds(split, data_dir) if gcompris else ()
        self.robosuite = [f"rs:{n}" for n in robosuite_source.rendered(split, data_dir)] \
            if robosuite else []

    @classmethod
    def for_config(cls, cfg: "RealConfig") -> "ObjectSource":
        return cls(cfg.split, cfg.data_dir, cfg.stamps_per_episode > 0,
                   cfg.sweethome_per_episode > 0,
                   cfg.gcompris_per_episode > 0 or cfg.gcompris_background_prob > 0,
                   cfg.robosuite_per_episode > 0)

    def family(self, obj):
        """Same-kind siblings share this: a product family index, the name family of a Sweet
        Home 3D model or GCompris photo, -1 for stamps."""
        if isinstance(obj, str) and obj.startswith("sh3d:"):
            return "sh3d:" + self._sh_index[obj[5:]]["family"]
        if isinstance(obj, str) and obj.startswith("gc:"):
            return "gc:" + self._gc_index[obj[3:]]["family"]
        if isinstance(obj, str) and obj.startswith("rs:"):
            return obj
        return -1 if isinstance(obj, str) else obj // products.FAMILY_SIZE

    def _rendered(self, obj) -> dict:
        """Cached renders of a Sweet Home 3D ('sh3d:') or robosuite ('rs:') object."""
        if obj.startswith("rs:"):
            return robosuite_source.renders(obj[3:], self.data_dir)
        return sweethome_source.model_renders(obj[5:], self.data_dir)

    def _gc(self, obj):
        return gcompris_source.objects(self.data_dir)[obj[3:]]

    def renders(self, product_id: int) -> dict:
        spec = products.product_spec(self.split, product_id)
        return products.product_cache(spec, data_dir=self.data_dir, **RENDER)

    def views(self, obj, rng) -> np.ndarray:
        """N_VIEWS RGBA reference views [N, 128, 128, 4] of an object."""
        if isinstance(obj, str) and obj.startswith("gc:"):
            return self.photo_object_views(obj, rng)[0]
        if isinstance(obj, str) and obj.startswith(("sh3d:", "rs:")):
            views = self._rendered(obj)["views"]
            order = rng.permutation(len(views))[:N_VIEWS]
            return np.stack([_square(crop_to_alpha(views[i]), VIEW_SIZE, rng) for i in order])
        if isinstance(obj, str):  # a photo stamp: new 'viewpoints' by homography + small rotation
            flat = sources.load_stamp(obj, self.data_dir)
            return np.stack([_square(_rotate(perspective_warp(flat, rng, 0.15),
                                             rng.uniform(-15, 15)), VIEW_SIZE, rng)
                             for _ in range(N_VIEWS)])
        views = self.renders(obj)["views"]
        order = rng.permutation(len(views))[:N_VIEWS]
        return np.stack([_square(crop_to_alpha(views[i]), VIEW_SIZE, rng) for i in order])

    def instance(self, obj, rng) -> np.ndarray:
        """An RGBA cut-out of the object as a scene shows it (not one of the reference views)."""
        if isinstance(obj, str) and obj.startswith("gc:"):
            return perspective_warp(self._gc(obj)[1], rng, 0.25)
        if isinstance(obj, str) and obj.startswith(("sh3d:", "rs:")):
            inst = self._rendered(obj)["instances"]
            return crop_to_alpha(inst[int(rng.integers(len(inst)))])
        if isinstance(obj, str):
            return perspective_warp(sources.load_stamp(obj, self.data_dir), rng, 0.25)
        inst = self.renders(obj)["instances"]
        return crop_to_alpha(inst[int(rng.integers(len(inst)))])

    def photo_object_views(self, obj, rng) -> tuple[np.ndarray, np.ndarray]:
        """A GCompris photo object's views: (RGBA cut-outs [N, 128, 128, 4], the same warps of the
        photo with its own background and no mask [N, 128, 128, 3])."""
        photo, cut = self._gc(obj)
        alpha_views, photo_views = [], []
        for _ in range(N_VIEWS):
            alpha_view, photo_view_ = _warped_pair(photo, cut, rng)
            alpha_views.append(alpha_view)
            photo_views.append(photo_view_)
        return np.stack(alpha_views), np.stack(photo_views)

    def kind(self, obj) -> str:
        if isinstance(obj, str) and obj[:3] in ("sh3", "gc:", "rs:"):
            return str(self.family(obj))
        return "stamp" if isinstance(obj, str) else products.product_spec(self.split, obj).kind

    def name(self, obj) -> str:
        return obj if isinstance(obj, str) else products.product_spec(self.split, obj).name


def _warped_pair(photo: np.ndarray, cut: np.ndarray, rng, strength: float = 0.15,
                 fill=(0.7, 0.9)):
    """One new 'viewpoint' of a photographed object: the same homography and rotation applied to
    its cut-out (-> an RGBA view, as _square makes them) and to the whole photo (-> an RGB view
    framed the same way, the photo's own background around the object, edges reflected)."""
    h, w = cut.shape[:2]
    src_pts = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src_pts + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.float32([w, h])
    m = cv2.getPerspectiveTransform(src_pts, dst)
    angle = rng.uniform(-15, 15)
    rot = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0), [0, 0, 1]])
    m = rot @ m
    corners = cv2.perspectiveTransform(src_pts[None], m)[0]
    lo = corners.min(axis=0)
    m = np.array([[1, 0, -lo[0]], [0, 1, -lo[1]], [0, 0, 1]]) @ m
    size = tuple(int(np.ceil(v)) + 1 for v in corners.max(axis=0) - lo)
    warped_cut = cv2.warpPerspective(cut, m, size, flags=cv2.INTER_LINEAR, borderValue=0)
    warped_photo = cv2.warpPerspective(photo, m, size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.nonzero(warped_cut[:, :, 3] >= 128)
    if len(xs) == 0:
        ys, xs = np.array([0, size[1] - 1]), np.array([0, size[0] - 1])
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    f = rng.uniform(*fill)
    side = max(x1 - x0, y1 - y0) / f
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    crop = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2],
                       [cx + side / 2, cy + side / 2]])
    a = cv2.getAffineTransform(crop, np.float32([[0, 0], [VIEW_SIZE, 0], [VIEW_SIZE, VIEW_SIZE]]))
    alpha_view = cv2.warpAffine(warped_cut, a, (VIEW_SIZE, VIEW_SIZE), flags=cv2.INTER_AREA,
                                borderValue=0)
    photo_view_ = cv2.warpAffine(warped_photo, a, (VIEW_SIZE, VIEW_SIZE), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_REFLECT)
    return alpha_view, photo_view_


def _rotate(rgba: np.ndarray, angle: float) -> np.ndarray:
    h, w = rgba.shape[:2]
    side = int(np.hypot(h, w)) + 2
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0)
    m[0, 2] += side / 2 - w / 2
    m[1, 2] += side / 2 - h / 2
    return crop_to_alpha(cv2.warpAffine(rgba, m, (side, side), flags=cv2.INTER_LINEAR,
                                        borderValue=0))


def _square(rgba: np.ndarray, size: int, rng, fill=(0.7, 0.9)) -> np.ndarray:
    """Centre a cut-out in a transparent size x size square, its longer side `fill` of it."""
    scale = size * rng.uniform(*fill) / max(rgba.shape[:2])
    w, h = max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale))
    small = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 4), np.uint8)
    y0, x0 = (size - h) // 2, (size - w) // 2
    out[y0:y0 + h, x0:x0 + w] = small
    return out


def photo_view(rgba: np.ndarray, photo: np.ndarray, rng) -> np.ndarray:
    """The view as a phone photo: the object on a real background crop, no mask (RGB)."""
    size = rgba.shape[0]
    bg = photo_source.random_crop(photo, size, size, rng, 0.1).astype(np.float32)
    bg = cv2.GaussianBlur(bg, (0, 0), float(rng.uniform(0.5, 2.0)))  # shallow depth of field
    a = rgba[:, :, 3:].astype(np.float32) / 255.0
    out = bg * (1 - a) + rgba[:, :, :3].astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def paste_scene(src: ObjectSource, cfg: RealConfig, members, distractors, rng):
    """One 480x640 scene of `members` [(label, object)] and unlabelled `distractors` on a real
    photo: returns (rgb, index map of the members' visible pixels (-1 elsewhere), painted
    pixel count per label)."""
    h, w = SCENE_SIZE
    if rng.random() < cfg.procedural_background_prob:
        bg = sources.procedural_background(h, w, rng)
    elif cfg.gcompris_background_prob > 0 and src.outdoor and \
            rng.random() < cfg.gcompris_background_prob:  # no draw at 0: reproducible
        bg = photo_source.random_crop(src.outdoor[int(rng.integers(len(src.outdoor)))], h, w, rng)
    else:
        bg = photo_source.random_crop(src.photos[int(rng.integers(len(src.photos)))], h, w, rng)
    image = bg.astype(np.float32)
    instances = np.full((h, w), -1, np.int16)
    items = [(c, obj) for c, obj in members] + [(-1, obj) for obj in distractors]
    order = rng.permutation(len(items))
    painted, centres = {}, []
    for j in order:
        label, obj = items[j]
        cut = src.instance(obj, rng)
        angle = rng.uniform(80, 100) * rng.choice([-1, 1]) if rng.random() < cfg.lying_prob \
            else rng.uniform(-cfg.max_tilt, cfg.max_tilt)
        cut = _rotate(cut, angle)
        small = cfg.small_prob > 0 and rng.random() < cfg.small_prob  # no draw at 0: reproducible
        frac = rng.uniform(*cfg.small_height) if small else rng.uniform(cfg.min_height, cfg.max_height)
        scale = frac * h / cut.shape[0]
        if cut.shape[1] * scale > 0.6 * w:  # very wide cut-outs: keep them inside the frame
            scale = 0.6 * w / cut.shape[1]
        size = (max(2, round(cut.shape[1] * scale)), max(2, round(cut.shape[0] * scale)))
        cut = cv2.resize(cut, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        cut[:, :, :3] = color_jitter(cut[:, :, :3], rng, 0.12).astype(np.uint8)
        if centres and rng.random() < cfg.overlap_prob:
            cx, cy = centres[int(rng.integers(len(centres)))]
            cx += int(rng.normal(0, cut.shape[1] / 2))
            cy += int(rng.normal(0, cut.shape[0] / 2))
        else:  # keep most of the object inside the image
            cx = int(rng.integers(size[0] // 3, max(size[0] // 3 + 1, w - size[0] // 3)))
            cy = int(rng.integers(size[1] // 3, max(size[1] // 3 + 1, h - size[1] // 3)))
        centres.append((cx, cy))
        n = paste(image, instances, cut, int(label) if label >= 0 else 32767,
                  cx - size[0] // 2, cy - size[1] // 2)
        if label >= 0:
            painted[label] = n
    instances[instances == 32767] = -1  # distractors occlude but are nobody's positives
    # Whole-image photometrics (brightness / tint, mild blur and sensor noise): pixels don't move.
    image = color_jitter(image, rng, 0.1)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.4, 1.0)))
    image = image + rng.normal(0, rng.uniform(0, 4), image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), instances, painted


def _pick_families(src: ObjectSource, pool: list, count: int, rng, family_max: int) -> list:
    """Up to `count` objects of `pool`, whole families first (at most family_max members of one
    family), families in random order: same-kind siblings (chairs, hammers) land together."""
    families: dict = {}
    for o in pool:
        families.setdefault(src.family(o), []).append(o)
    keys = sorted(families, key=str)
    order = rng.permutation(len(keys))
    if rng.random() < 0.5:  # half the episodes start from families with siblings
        order = sorted(order, key=lambda k: len(families[keys[k]]) < 2)
    picked: list = []
    for k in order:
        members = families[keys[k]]
        take = min(len(members), family_max, count - len(picked))
        picked += [members[i] for i in sorted(rng.choice(len(members), take, replace=False))]
        if len(picked) >= count:
            break
    return picked


def visible_boxes(instances: np.ndarray, count: int) -> np.ndarray:
    """[count, 4] boxes (x0, y0, x1, y1; pixel edges, so a one-pixel object at (u, v) is
    (u, v, u + 1, v + 1)) around each label's visible pixels in an instance map; NaN where a
    label has none."""
    out = np.full((count, 4), np.nan, np.float32)
    for c in range(count):
        ys, xs = np.nonzero(instances == c)
        if len(xs):
            out[c] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return out


def make_episode(src: ObjectSource, cfg: RealConfig, rng: np.random.Generator) -> dict:
    """One episode (dict of arrays; the format training.evaluation.evaluate.evaluate reads, plus extras)."""
    n_fam = len(src.products) // products.FAMILY_SIZE
    fams = rng.choice(n_fam, cfg.families_per_episode, replace=False)
    objects: list = [int(f * products.FAMILY_SIZE + m) for f in fams
                     for m in range(products.FAMILY_SIZE)]
    if src.stamps and cfg.stamps_per_episode:
        picks = rng.choice(len(src.stamps), min(cfg.stamps_per_episode, len(src.stamps)),
                           replace=False)
        objects += [src.stamps[i] for i in picks]
    if src.sweethome and cfg.sweethome_per_episode:
        objects += _pick_families(src, src.sweethome, cfg.sweethome_per_episode, rng,
                                  SWEETHOME_FAMILY_MAX)
    if src.gcompris and cfg.gcompris_per_episode:
        objects += _pick_families(src, src.gcompris, cfg.gcompris_per_episode, rng,
                                  cfg.gcompris_per_episode)
    if src.robosuite and cfg.robosuite_per_episode:
        picks = rng.choice(len(src.robosuite), min(cfg.robosuite_per_episode, len(src.robosuite)),
                           replace=False)
        objects += [src.robosuite[i] for i in sorted(picks)]
    C, S = len(objects), cfg.scenes_per_episode
    views_alpha, own_photo = [], {}
    for c, o in enumerate(objects):
        if isinstance(o, str) and o.startswith("gc:"):  # real photos: their own backgrounds
            views_alpha_c, own_photo[c] = src.photo_object_views(o, rng)
            views_alpha.append(views_alpha_c)
        else:
            views_alpha.append(src.views(o, rng))
    views_alpha = np.stack(views_alpha)  # [C, N, V, V, 4]
    views_photo = np.stack([own_photo[c] if c in own_photo else
                            [photo_view(v, src.photos[int(rng.integers(len(src.photos)))], rng)
                             for v in obj_views] for c, obj_views in enumerate(views_alpha)])
    rows, cols = SCENE_SIZE[0] // STRIDE, SCENE_SIZE[1] // STRIDE
    scenes = np.zeros((S,) + SCENE_SIZE + (3,), np.uint8)
    targets = np.zeros((S, C, rows, cols), np.float32)
    visible = np.zeros((S, C), np.int32)
    visible_fraction = np.full((S, C), np.nan, np.float32)
    boxes = np.full((S, C, 4), np.nan, np.float32)  # visible box x0, y0, x1, y1 (pixel edges)
    instances = np.full((S,) + SCENE_SIZE, -1, np.int16)  # visible object index per pixel
    others = [o for o in src.products if o not in set(objects)]
    if cfg.sweethome_per_episode or cfg.gcompris_per_episode or cfg.robosuite_per_episode:
        others += [o for o in src.sweethome + src.gcompris + src.robosuite  # every source
                   if o not in set(objects)]
    for s in range(S):
        k = int(rng.integers(1, min(cfg.max_present, C - 1) + 1))
        # Siblings together: start from one family member, then prefer its family.
        first = int(rng.integers(C))
        fam_of = [objects.index(o) // products.FAMILY_SIZE if not isinstance(o, str) else
                  src.family(o) for o in objects]
        weights = np.array([3.0 if fam_of[c] == fam_of[first] else 1.0 for c in range(C)])
        weights[first] = 0
        rest = rng.choice(C, k - 1, replace=False, p=weights / weights.sum()).tolist() if k > 1 else []
        members = [(c, objects[c]) for c in [first] + rest]
        n_d = int(rng.integers(0, cfg.max_distractors + 1))
        distractors = [others[i] for i in rng.choice(len(others), n_d, replace=False)] if n_d else []
        img, inst, painted = paste_scene(src, cfg, members, distractors, rng)
        scenes[s], instances[s] = img, inst
        targets[s], visible[s] = cell_targets(inst, C, STRIDE, cfg.cell_positive_coverage,
                                              cfg.min_visible_pixels)
        for c, n in painted.items():
            if n:
                visible_fraction[s, c] = visible[s, c] / n
        boxes[s] = visible_boxes(inst, C)
    return {
        "views_alpha": views_alpha,
        "views_photo": views_photo,
        "views_a": views_alpha,  # evaluate()'s key: the alpha variant unless swapped
        "scenes": scenes,
        "targets": targets,
        "present": visible >= cfg.min_visible_pixels,
        "visible_pixels": visible,
        "visible_fraction": visible_fraction,
        "boxes": boxes,
        "instances": instances,  # labels at any other stride (training.data.features --stride8)
        "object_names": np.array([src.name(o) for o in objects]),
        "object_kinds": np.array([src.kind(o) for o in objects]),
    }


def held_out_sequence(num_scenes: int, seed: int = 7, data_dir: str = "data", family: int = 7,
                      other_families=(3, 11, 19, 26, 33, 41)):
    """A held-out textured product (test split, never trained on) for demos and node tests:
    (8 RGBA views, [(scene rgb 480x640, its visible-pixel mask)] ). Two of every three scenes
    hold it among two of its same-shape siblings and two other products; the third holds only
    the others. Deterministic."""
    rng = np.random.default_rng(seed)
    src = ObjectSource("test", data_dir, with_stamps=False)
    cfg = RealConfig(split="test", data_dir=data_dir, min_height=0.15, max_height=0.35,
                     lying_prob=0.0, overlap_prob=0.0)
    query = family * products.FAMILY_SIZE
    siblings = [query + m for m in range(1, products.FAMILY_SIZE)]
    others = [f * products.FAMILY_SIZE + int(rng.integers(products.FAMILY_SIZE))
              for f in other_families]
    views = src.views(query, rng)
    scenes = []
    for i in range(num_scenes):
        present = i % 3 != 2
        distractors = [siblings[j] for j in rng.choice(len(siblings), 2, replace=False)] + \
            [others[j] for j in rng.choice(len(others), 2, replace=False)]
        rgb, instances, _ = paste_scene(src, cfg, [(0, query)] if present else [],
                                        distractors, rng)
        scenes.append((rgb, instances == 0))
    return views, scenes


def bench_dir(split: str, data_dir: str = "data") -> Path:
    return Path(data_dir) / "realbench" / split


def build(split: str, episodes: int, cfg: RealConfig | None = None, seed: int | None = None,
          out: Path | None = None, start: int = 0) -> Path:
    """Write episodes start..episodes-1 as <out>/episode_NNNN.npz (existing ones are kept).

    Episode i depends only on (seed, i) and the data on disk, so any prefix is reproducible."""
    cfg = cfg or RealConfig(split=split)
    out = out or bench_dir(split, cfg.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = ObjectSource.for_config(cfg)
    seed = BENCH_SEED[split] if seed is None else seed
    for i in range(start, episodes):
        path = out / f"episode_{i:04d}.npz"
        if path.is_file():
            continue
        ep = make_episode(src, cfg, np.random.default_rng([seed, i]))
        ep.pop("views_a")
        ep.pop("instances")  # the targets and boxes carry what the benchmark scores
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **ep)
        tmp.replace(path)
    meta = {"split": split, "episodes": episodes, "seed": seed, "config": asdict(cfg),
            "view_size": VIEW_SIZE, "scene_size": list(SCENE_SIZE), "stride": STRIDE}
    (out / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load(split: str, data_dir: str = "data", views: str = "alpha", limit: int | None = None,
         folder: Path | None = None) -> list[dict]:
    """The benchmark's episodes; `views` = 'alpha' (RGBA cut-outs) or 'photo' (RGB, background)."""
    folder = folder or bench_dir(split, data_dir)
    paths = sorted(p for p in folder.glob("episode_*.npz") if not p.name.endswith(".tmp.npz"))
    if not paths:
        raise FileNotFoundError(f"no benchmark episodes in {folder}; build them with\n"
                                f"  python -m training.data.realbench --split {split}")
    eps = []
    for p in paths[:limit]:
        with np.load(p, allow_pickle=False) as z:
            ep = {k: z[k] for k in z.files}
        ep["views_a"] = ep["views_alpha"] if views == "alpha" else ep["views_photo"]
        eps.append(ep)
    return eps


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the real-object benchmark (deterministic).")
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--episodes", type=int, default=None,
                    help="default: 30 for val, 50 for test (4 scenes each)")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    n = args.episodes or {"val": 30, "test": 50, "train": 10}[args.split]
    out = build(args.split, n, RealConfig(split=args.split, data_dir=args.data_dir), out=args.out)
    eps = load(args.split, args.data_dir, folder=out)
    pairs = sum(e["present"].size for e in eps)
    pos = sum(int(e["present"].sum()) for e in eps)
    print(f"{out}: {len(eps)} episodes, {sum(len(e['scenes']) for e in eps)} scenes, "
          f"{pairs} queries ({pairs - pos} of absent objects)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
