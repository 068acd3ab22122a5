"""Where the training data comes from: cut-outs and backgrounds (all offline, cached under data/).

- Debian `tuxpaint-stamps-default`: PNG cut-outs with alpha (many are real photographs),
  fetched with `apt-get download` + `dpkg-deb -x` into data/cache, split 80/10/10 by a stable
  hash of the file name. Missing apt -> a warning, and training goes on without them.
- Backgrounds: the colour photographs bundled with scikit-image (cached as one npz) plus
  procedural textures (noise, gradients, stripes, checkers, blobs) for variety.

Every function is idempotent: it looks in the cache first and only does work once.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
# skimage sample images that are (colour or gray) photographs and ship inside the wheel.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "coins", "camera", "moon", "brick", "grass", "gravel",
                  "retina", "colorwheel", "page", "text", "clock", "horse", "cell", "microaneurysms")


def cache_dir(data_dir: str | os.PathLike = "data") -> Path:
    path = Path(data_dir) / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def fetch_lock(cache: Path):
    """Held while a package is downloaded and unpacked into `cache`: data jobs run side by side
    (make data-v4 in two processes), and without it one unpacks a .deb the other is writing."""
    with open(cache / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ----------------------------------------------------------------------------- tuxpaint stamps

def stable_split(name: str) -> str:
    """80/10/10 train/val/test by sha1 of a name: stable across runs, machines and Python versions."""
    bucket = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def fetch_debian(package: str, cache: Path, folder: str | None = None) -> Path | None:
    """`apt-get download` + `dpkg-deb -x` of a Debian package into cache/<folder or package>
    (once; a `.done` mark says it finished); None with a warning when apt cannot deliver it."""
    root = cache / (folder or package)
    if (root / ".done").is_file():
        return root
    with fetch_lock(cache):
        return root if (root / ".done").is_file() else _fetch_debian_locked(package, cache, root)


def _fetch_debian_locked(package: str, cache: Path, root: Path) -> Path | None:
    try:
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if not debs:
            cmd = ["apt-get", "download", package]
            if subprocess.run(cmd, cwd=cache, capture_output=True).returncode != 0:
                # Package lists may be stale or empty on a fresh machine; refresh once.
                subprocess.run(["apt-get", "update"], capture_output=True, check=False)
                subprocess.run(cmd, cwd=cache, capture_output=True, check=True)
            debs = sorted(cache.glob(f"{package}_*.deb"))
        root.mkdir(exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError, IndexError) as exc:
        log.warning("Debian package %s unavailable (%s); continuing without it", package, exc)
        return None
    (root / ".done").touch()
    return root


def _fetch_tuxpaint(cache: Path) -> Path | None:
    """The tuxpaint stamps folder (fetch_debian into cache/tuxpaint), or None."""
    stamps = cache / "tuxpaint" / "usr" / "share" / "tuxpaint" / "stamps"
    if stamps.is_dir():
        return stamps
    root = fetch_debian(TUXPAINT_PACKAGE, cache, "tuxpaint")
    return stamps if root is not None and stamps.is_dir() else None


def _has_useful_alpha(path: str, min_side: int = 48) -> bool:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4 or min(img.shape[:2]) < min_side:
        return False
    opaque = (img[:, :, 3] >= 128).mean()
    return 0.05 < opaque < 0.98  # a real cut-out: some object, some transparent surround


def tuxpaint_index(data_dir: str | os.PathLike = "data") -> dict[str, list[str]]:
    """Stamp names per split (name = path under the stamps folder, without .png), cached as json.

    Returns empty lists (with a warning) when the Debian package cannot be fetched.
    """
    cache = cache_dir(data_dir)
    index_file = cache / "tuxpaint_index.json"
    if index_file.is_file():
        return json.loads(index_file.read_text())
    stamps = _fetch_tuxpaint(cache)
    index: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    if stamps is None:
        return index  # not cached: a later run may have apt
    for path in sorted(glob.glob(str(stamps / "**" / "*.png"), recursive=True)):
        # Tux Paint ships mirrored/alternate variants as *_mirror.png etc.; they are the same object.
        if any(path.endswith(s) for s in ("_mirror.png", "_flip.png", "_back.png")):
            continue
        # Cartoons and flat symbol shapes are not photographs of objects: keep the photo-like ones.
        if "/cartoon/" in path or path.endswith(("_outline.png", "_filled.png")):
            continue
        if _has_useful_alpha(path):
            name = os.path.relpath(path, stamps)[: -len(".png")]
            index[stable_split(Path(name).name)].append(name)
    index_file.write_text(json.dumps(index, indent=0))
    log.info("tuxpaint stamps: %s", {k: len(v) for k, v in index.items()})
    return index


def tuxpaint_ids(split: str, data_dir: str | os.PathLike = "data") -> list[str]:
    """Identifiers ('tux:<name>') of the tuxpaint stamps in a split."""
    return [f"tux:{name}" for name in tuxpaint_index(data_dir)[split]]


@lru_cache(maxsize=256)
def _load_stamp_cached(stamps_dir: str, name: str) -> np.ndarray:
    bgra = cv2.imread(os.path.join(stamps_dir, name + ".png"), cv2.IMREAD_UNCHANGED)
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
    ys, xs = np.nonzero(rgba[:, :, 3] >= 128)
    rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]  # tight crop around the object
    # Stamps are up to ~400 px; 160 px is plenty for 96-128 px views and small pasted objects.
    scale = 160.0 / max(rgba.shape[:2])
    if scale < 1.0:
        size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
        rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    rgba.setflags(write=False)
    return rgba


def load_stamp(stamp_id: str, data_dir: str | os.PathLike = "data") -> np.ndarray:
    """RGBA uint8 cut-out of a tuxpaint stamp ('tux:<name>'), tightly cropped, read-only."""
    name = stamp_id[len("tux:"):] if stamp_id.startswith("tux:") else stamp_id
    stamps = cache_dir(data_dir) / "tuxpaint" / "usr" / "share" / "tuxpaint" / "stamps"
    return _load_stamp_cached(str(stamps), name)


# ----------------------------------------------------------------------------- backgrounds

def _to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
        img = (255 * (img - img.min()) / max(1e-9, img.max() - img.min())).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[:, :, :3])


def photo_backgrounds(data_dir: str | os.PathLike = "data") -> list[np.ndarray]:
    """Real photographs (RGB uint8) from skimage.data, whichever load offline; cached as npz."""
    cache = cache_dir(data_dir) / "backgrounds_skimage.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return [z[k] for k in sorted(z.files)]
    import skimage.data
    photos = {}
    for name in SKIMAGE_PHOTOS:
        try:
            img = _to_rgb_uint8(getattr(skimage.data, name)())
        except Exception as exc:  # noqa: BLE001 - some need a download; skip those offline
            log.info("skimage.data.%s unavailable: %s", name, exc)
            continue
        if min(img.shape[:2]) >= 128:
            photos[name] = img
    np.savez(cache, **photos)
    return [photos[k] for k in sorted(photos)]


def procedural_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random synthetic texture (RGB uint8): smooth noise, gradient, stripes, checker or blobs."""
    kind = rng.integers(5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # multi-scale smooth noise
        img = np.zeros((h, w, 3), np.float32)
        for octave in range(1, 5):
            cells = 2 ** octave
            small = rng.uniform(0, 1, (cells + 1, cells + 1, 3)).astype(np.float32)
            img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / octave
        img = (img - img.min()) / max(1e-6, np.ptp(img))
        out = c0 + img * (c1 - c0)
    elif kind == 1:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx / w + np.sin(angle) * yy / h
        t = ((t - t.min()) / max(1e-6, np.ptp(t)))[..., None]
        out = c0 + t * (c1 - c0)
    elif kind == 2:  # stripes
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 40)
        t = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period)
        out = np.where((t > 0)[..., None], c0, c1)
    elif kind == 3:  # checker
        cell = rng.uniform(6, 48)
        t = ((xx // cell + yy // cell) % 2).astype(bool)
        out = np.where(t[..., None], c0, c1)
    else:  # random blobs on a flat colour
        out = np.broadcast_to(c0, (h, w, 3)).astype(np.float32).copy()
        for _ in range(rng.integers(5, 30)):
            centre = (int(rng.integers(w)), int(rng.integers(h)))
            radius = int(rng.integers(3, max(4, min(h, w) // 4)))
            cv2.circle(out, centre, radius, rng.uniform(0, 255, 3).tolist(), -1)
    out = out + rng.normal(0, rng.uniform(0, 6), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)
