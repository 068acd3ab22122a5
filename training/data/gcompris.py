"""GCompris (Debian `gcompris-qt-data`): real object photos and outdoor photos, from its `.rcc` files.

GCompris packs its images in Qt resource files; training/data/rcc.py reads them (bounds-checked,
size-capped, no path leaves the output folder). Only these folders are unpacked:

- objects: categorization/resource/images/{tools,others} -- 56 real photos of tools (hammers,
  pliers, tape measures, screwdrivers ...) and household items (cup, plate, bulb, spoons ...),
  ~320 px, mostly plain backgrounds, no masks. Family = the file name without digits ('hammer'),
  so the several hammers of one split stay together in an episode.
- backgrounds: ~190 outdoor photos (monuments, dams, solar ovens, animals, fish): categorization
  monuments/renewable/fishes, explore_monuments, explore_*_animals, erase.

Each folder's README gives every file's copyright, source and licence (public domain, CC0,
CC-BY(-SA)); `licences()` has them per file and the index records them. Splits: objects by
`sources.stable_split` of their name; backgrounds by the photo's source address (the same
Wikimedia photo appears in two activities and must not cross splits).

An object's reference views: `views_alpha` gets the object cut out by the runtime's GrabCut rule
(yolz_ros.runtime.foreground.grabcut_alpha, as a registration tool would mask it), `views_photo`
the photo itself, background and all, with no mask (the runtime's GrabCut rule applies to it at
feature time). Scene instances are the cut-out, perspective-warped. Objects GrabCut cannot cut are
left out. Cache: data/cache/gcompris (the .deb), gcompris_images/ (unpacked), gcompris_index.json,
gcompris_objects.npz, gcompris_backgrounds_<split>.npz (no pickle). All idempotent.
"""
from __future__ import annotations

import json
import logging
import os
import re
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from training.data import rcc, sources
from yolz_ros.runtime.foreground import grabcut

log = logging.getLogger(__name__)

PACKAGE = "gcompris-qt-data"
RCC_DIR = "usr/share/gcompris-qt/rcc"
OBJECT_FOLDERS = {  # rcc file -> folders (inside its tree) of object photos
    "categorization": ("categorization/resource/images/tools/",
                       "categorization/resource/images/others/"),
}
BACKGROUND_FOLDERS = {
    "categorization": ("categorization/resource/images/monuments/",
                       "categorization/resource/images/renewable/",
                       "categorization/resource/images/fishes/"),
    "explore_monuments": ("explore_monuments/resource/",),
    "explore_world_animals": ("explore_world_animals/resource/animals/",),
    "explore_farm_animals": ("explore_farm_animals/resource/animals/",),
    "erase": ("erase/resource/",),
}
NOT_OBJECTS = ("igloo",)  # a building, not something a robot meets on a table
OBJECT_SIDE = 320
BACKGROUND_SIDE = 1024


def _wanted(rel: str) -> str | None:
    """'object' / 'background' for an rcc path that is unpacked, else None."""
    for kind, table in (("object", OBJECT_FOLDERS), ("background", BACKGROUND_FOLDERS)):
        for folders in table.values():
            for f in folders:
                if f in rel and (rel.endswith((".webp", ".jpg", ".png")) or rel.endswith("/README")):
                    return kind
    return None


def images_dir(data_dir) -> Path:
    return sources.cache_dir(data_dir) / "gcompris_images"


def unpack(data_dir: str | os.PathLike = "data") -> Path | None:
    """The unpacked image folders (fetch + extract once; a `.done` mark), or None without apt."""
    out = images_dir(data_dir)
    if (out / ".done").is_file():
        return out
    root = sources.fetch_debian(PACKAGE, sources.cache_dir(data_dir), "gcompris")
    if root is None:
        return None
    for name in sorted(set(OBJECT_FOLDERS) | set(BACKGROUND_FOLDERS)):
        path = root / RCC_DIR / f"{name}.rcc"
        if path.is_file():
            rcc.extract_rcc(path, out, keep=lambda rel: _wanted(rel) is not None)
    (out / ".done").touch()
    return out


def parse_readme(text: str) -> dict[str, dict]:
    """file name -> {'copyright', 'source', 'licence'} from a GCompris resource README (blocks
    of 'Copyright:', 'Source:', 'License:', 'Files:' lines; files on that line or below)."""
    out: dict[str, dict] = {}
    for block in re.split(r"\n\s*\n", text):
        info, files, in_files = {}, [], False
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            k = key.strip().lower()
            if sep and k in ("copyright", "source", "license", "comments", "files"):
                in_files = k == "files"
                if in_files:
                    files += value.split()
                elif k != "comments":
                    info["licence" if k == "license" else k] = value.strip()
            elif in_files:
                files += line.split()
        for f in files:
            out[f] = info
    return out


def licences(data_dir: str | os.PathLike = "data") -> dict[str, dict]:
    """'<folder>/<file>' (relative to the unpacked tree) -> licence info, from the READMEs."""
    root = unpack(data_dir)
    found = {}
    if root is None:
        return found
    for readme in sorted(root.rglob("README")):
        folder = readme.parent.relative_to(root).as_posix()
        for name, info in parse_readme(readme.read_text(errors="replace")).items():
            found[f"{folder}/{name}"] = info
    return found


def _family(stem: str) -> str:
    return re.sub(r"\d+$", "", stem).lower()


def index(data_dir: str | os.PathLike = "data") -> dict:
    """{'objects': {name: {...}}, 'backgrounds': {name: {...}}} with path, family/licence, split;
    cached json. Empty (not cached) without the package."""
    path = sources.cache_dir(data_dir) / "gcompris_index.json"
    if path.is_file():
        return json.loads(path.read_text())
    root = unpack(data_dir)
    if root is None:
        return {"objects": {}, "backgrounds": {}}
    lic = licences(data_dir)
    objects, backgrounds = {}, {}
    for img in sorted(root.rglob("*.webp")):
        rel = img.relative_to(root).as_posix()
        kind = _wanted(rel)
        info = lic.get(rel, {})
        if kind == "object" and img.stem not in NOT_OBJECTS:
            name = f"{img.parent.name}/{img.stem}"
            objects[name] = {"path": rel, "family": _family(img.stem), **info,
                             "split": sources.stable_split(name)}
        elif kind == "background":
            key = info.get("source") or rel
            backgrounds[rel] = {"path": rel, **info, "split": sources.stable_split(key)}
    out = {"objects": objects, "backgrounds": backgrounds}
    path.write_text(json.dumps(out, indent=0))
    return out


def _read(path: Path, max_side: int) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    scale = max_side / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def cut_out(rgb: np.ndarray, work_side: int = 160, iterations: int = 4) -> np.ndarray | None:
    """RGBA of an object photo on a plain-ish background, alpha = its mask; None where no
    plausible object is found. GrabCut started from the photo's border colours: pixels far from
    them are probable object, near ones probable background, border pixels near them sure
    background (unlike the runtime's central rectangle, this keeps objects that reach the edge)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, work_side / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    dist = np.linalg.norm(lab - np.median(border, axis=0), axis=-1)
    edge = np.zeros(dist.shape, bool)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = True, True, True, True
    thresh = max(18.0, 1.5 * float(np.percentile(dist[edge], 75)))
    mask = np.where(dist > thresh, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[edge & (dist <= thresh)] = cv2.GC_BGD
    if not (mask == cv2.GC_PR_FGD).any() or not (mask != cv2.GC_PR_FGD).any():
        return None
    fg = grabcut(small, mask, None, iterations)
    if fg is None:
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.nonzero(areas >= 0.05 * areas.max())[0]
    fg = np.isin(labels, keep).astype(np.uint8)
    if not 0.03 <= fg.mean() <= 0.97:
        return None
    alpha = cv2.resize(fg * 255, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.dstack([rgb, alpha]).astype(np.uint8)


@lru_cache(maxsize=2)
def objects(data_dir: str = "data") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (RGB photo, RGBA GrabCut cut-out) of every object GrabCut could cut; cached npz."""
    cache = sources.cache_dir(data_dir) / "gcompris_objects.npz"
    if not cache.is_file():
        idx = index(data_dir)["objects"]
        arrays = {}
        for name, entry in sorted(idx.items()):
            rgb = _read(images_dir(data_dir) / entry["path"], OBJECT_SIDE)
            cut = None if rgb is None else cut_out(rgb)
            if cut is None and rgb is not None:  # fall back to the runtime's rule
                from yolz_ros.runtime.foreground import grabcut_alpha
                alpha = grabcut_alpha(rgb, work_side=160)
                cut = None if alpha is None else np.dstack([rgb, alpha]).astype(np.uint8)
            if cut is not None:
                key = name.replace("/", "|")
                arrays[f"photo:{key}"], arrays[f"cut:{key}"] = rgb, cut
        if not idx:
            return {}
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(cache)
    with np.load(cache, allow_pickle=False) as z:
        keys = sorted(k[len("photo:"):] for k in z.files if k.startswith("photo:"))
        return {k.replace("|", "/"): (z[f"photo:{k}"], z[f"cut:{k}"]) for k in keys}


def object_names(split: str, data_dir: str = "data") -> list[str]:
    idx = index(data_dir)["objects"]
    cut = objects(data_dir)
    return [n for n in sorted(idx) if idx[n]["split"] == split and n in cut]


@lru_cache(maxsize=4)
def backgrounds(split: str, data_dir: str = "data") -> tuple[np.ndarray, ...]:
    """The outdoor photos of a split (RGB, longer side <= 1024); cached npz per split."""
    cache = sources.cache_dir(data_dir) / f"gcompris_backgrounds_{split}.npz"
    if not cache.is_file():
        idx = index(data_dir)["backgrounds"]
        if not idx:
            return ()
        arrays = {}
        for rel, entry in sorted(idx.items()):
            if entry["split"] == split:
                img = _read(images_dir(data_dir) / rel, BACKGROUND_SIDE)
                if img is not None and min(img.shape[:2]) >= 128:
                    arrays[rel.replace("/", "|")] = img
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    with np.load(cache, allow_pickle=False) as z:
        return tuple(z[k] for k in sorted(z.files))
