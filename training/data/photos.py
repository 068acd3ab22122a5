"""Real photographs for backgrounds and product labels, fetched from registry packages (offline).

Sources (none of them reserved for independent evaluation, see ../shared/DATA.md):
- scikit-image's bundled sample photos (already installed; `sources.photo_backgrounds`),
- Debian `lomiri-wallpapers-16.04` (landscape/indoor photos) and `mate-backgrounds` (nature photos),
- PyPI `mvtb-data` (Machine Vision Toolbox images: streets, buildings, a lab, flowers ...),
- PyPI `robosuite` (only its `models/assets/textures/`: wood, plaster, tile, metal and product photos).

Each package is downloaded once into data/cache (apt-get download / pip download --no-deps) and
only the image members are unpacked, each checked to stay inside its folder. Every photo is assigned
to train/val/test by a stable hash of its name, so no photo is both behind a training object and
behind a benchmark object. Missing packages give a warning, never a failure: the pool just shrinks.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from training.data import sources

log = logging.getLogger(__name__)

DEBIAN_PHOTOS = {  # package -> folder inside it holding the photos
    "lomiri-wallpapers-16.04": "usr/share/backgrounds",
    "mate-backgrounds": "usr/share/backgrounds/mate/nature",
}
WHEEL_PHOTOS = {  # (pip requirement, member prefix, minimum member size: drops tiny synthetic images)
    "mvtb-data": ("mvtb-data==1.6.1", "mvtbdata/images/", 100_000),
    "robosuite": ("robosuite==1.5.2", "robosuite/models/assets/textures/", 0),
}
# mvtb-data images that are not photographs (calibration targets, synthetic test patterns).
NOT_PHOTOS = ("apriltag", "aruco", "fisheye_target", "calibration/", "multiblobs", "shark",
              "segmentation", "scale-space", "eg-morph", "5points", "wally.png", "tags.png",
              "greenscreen", "yellowtargets")
MAX_SIDE = 1024  # photos are kept at most this size: plenty for 640x480 scenes and label crops


def _safe_member(root: Path, name: str) -> Path | None:
    """The destination of an archive member, or None when it would leave `root`."""
    dest = (root / name).resolve()
    return dest if dest.is_relative_to(root.resolve()) else None


def _fetch_wheel(key: str, cache: Path) -> Path | None:
    requirement, prefix, min_size = WHEEL_PHOTOS[key]
    root = cache / key
    if (root / ".done").is_file():
        return root
    with sources.fetch_lock(cache):
        if (root / ".done").is_file():
            return root
        return _fetch_wheel_locked(key, cache, root, requirement, prefix, min_size)


def _fetch_wheel_locked(key, cache, root, requirement, prefix, min_size) -> Path | None:
    try:
        wheels = sorted(cache.glob(f"{key.replace('-', '_')}-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "-d", str(cache), requirement], check=True, capture_output=True)
            wheels = sorted(cache.glob(f"{key.replace('-', '_')}-*.whl"))
        root.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheels[-1]) as zf:
            for info in zf.infolist():
                name = info.filename
                if (not name.startswith(prefix) or info.is_dir() or info.file_size < min_size
                        or not name.lower().endswith((".png", ".jpg", ".jpeg"))):
                    continue
                dest = _safe_member(root, name)
                if dest is None or info.file_size > 64 << 20:
                    log.warning("skipping archive member %r (outside the folder or too large)", name)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    out.write(src.read())
    except (OSError, subprocess.CalledProcessError, IndexError, zipfile.BadZipFile) as exc:
        log.warning("PyPI package %s unavailable (%s); continuing without it", requirement, exc)
        return None
    (root / ".done").touch()
    return root


def _read_photo(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None or min(bgr.shape[:2]) < 128:
        return None
    scale = MAX_SIDE / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def photo_files(data_dir: str | os.PathLike = "data") -> dict[str, Path]:
    """name -> path of every fetched package photo (name = '<package>/<relative path>')."""
    cache = sources.cache_dir(data_dir)
    found: dict[str, Path] = {}
    for package, folder in DEBIAN_PHOTOS.items():
        root = sources.fetch_debian(package, cache)
        if root is not None:
            for p in sorted((root / folder).glob("*")):
                if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    found[f"{package}/{p.name}"] = p
    for key in WHEEL_PHOTOS:
        root = _fetch_wheel(key, cache)
        if root is not None:
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).as_posix()
                if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png") and \
                        not any(bad in rel for bad in NOT_PHOTOS):
                    found[f"{key}/{rel}"] = p
    return found


@lru_cache(maxsize=4)
def photo_pool(split: str, data_dir: str = "data") -> tuple[np.ndarray, ...]:
    """The real photos (RGB uint8, longer side <= 1024) of one split, cached as one npz per split.

    Split by `sources.stable_split` of the photo's name; skimage's photos join under 'skimage/<i>'.
    """
    cache = sources.cache_dir(data_dir) / f"photos_{split}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return tuple(z[k] for k in sorted(z.files))
    photos = {}
    for name, path in photo_files(data_dir).items():
        if sources.stable_split(name) == split:
            img = _read_photo(path)
            if img is not None:
                photos[name.replace("/", "|")] = img
    for i, img in enumerate(sources.photo_backgrounds(data_dir)):
        if sources.stable_split(f"skimage/{i}") == split:
            photos[f"skimage|{i}"] = img
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **photos)
    tmp.replace(cache)
    log.info("photos for %s: %d", split, len(photos))
    return tuple(photos[k] for k in sorted(photos))


def random_crop(photo: np.ndarray, h: int, w: int, rng: np.random.Generator,
                min_frac: float = 0.2) -> np.ndarray:
    """An h x w RGB crop of `photo` (aspect kept, 20-100% of its short side, maybe flipped)."""
    ph, pw = photo.shape[:2]
    ch = max(1, int(min(ph, pw * h / w) * rng.uniform(min_frac, 1.0)))
    cw = max(1, min(pw, round(ch * w / h)))
    y0, x0 = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp))
