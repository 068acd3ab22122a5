"""PyBullet renders (DIRECT + ER_TINY_RENDERER, CPU only): object views and tabletop scenes.

- `render_object_views(obj_id, n, size, rng)`: RGBA [n, size, size, 4] uint8 views of one
  random_urdf from random orientations, distances and light directions; alpha from the
  segmentation mask; the object is centred and fills ~70% of the view.
- `render_tabletop_scene(obj_ids, size, rng)`: the objects dropped on the table, physics run,
  a random camera; RGB [H, W, 3] uint8 + instance map int16 [H, W] (object id, -1 elsewhere).

CLI (seeded, multiprocessing, skips shards already on disk):
    python -m training.data.render --split train --views-per-object 16 --view-size 96 \
        --scenes 600 --scene-size 256 256 --workers 2 --out data/pybullet
writes `views/{obj:03d}.npz` (`rgba` [V, S, S, 4]) and `scenes/{split}_{shard:04d}.npz`
(`images` [S, H, W, 3], `instances` [S, H, W] int16, `object_ids` [S, 20] int16 padded with -1).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import cv2
import numpy as np

from training.data import sources

SUPERSAMPLE = 2          # TinyRenderer does not anti-alias: render 2x and downsample (INTER_AREA)
VIEW_FILL = 0.70         # longer side of the object / view side
SCENE_SHARD = 50         # scenes per npz shard
MAX_SCENE_OBJECTS = 20
TABLE_TOP_Z = 0.625      # table.urdf: top plate centred at z=0.6, 0.05 thick

_client = None


def _pb():
    """This process's own DIRECT PyBullet client (one per worker; not shared across forks)."""
    global _client
    import pybullet as p
    if _client is None or not p.isConnected(_client):
        _client = p.connect(p.DIRECT)
    return p, _client


def _random_quaternion(rng: np.random.Generator) -> list[float]:
    q = rng.normal(size=4)
    return (q / np.linalg.norm(q)).tolist()


def _random_light(rng: np.random.Generator) -> dict:
    d = rng.normal(size=3)
    d[2] = abs(d[2]) + 0.3  # mostly from above, as indoors
    return dict(lightDirection=(d / np.linalg.norm(d)).tolist(),
                lightColor=rng.uniform(0.8, 1.0, 3).tolist(),
                lightAmbientCoeff=float(rng.uniform(0.3, 0.7)),
                lightDiffuseCoeff=float(rng.uniform(0.4, 0.8)),
                lightSpecularCoeff=float(rng.uniform(0.0, 0.3)))


def _camera_image(p, cid, width, height, view, proj, light, shadow=False):
    _, _, rgba, _, seg = p.getCameraImage(width, height, viewMatrix=view, projectionMatrix=proj,
                                          shadow=int(shadow), renderer=p.ER_TINY_RENDERER,
                                          physicsClientId=cid, **light)
    rgba = np.asarray(rgba, np.uint8).reshape(height, width, 4)
    seg = np.asarray(seg, np.int32).reshape(height, width)
    return rgba[:, :, :3], seg


def _centre_in_view(rgb: np.ndarray, mask: np.ndarray, size: int, fill: float) -> np.ndarray:
    """Crop to the object's box and scale it so its longer side is fill*size, centred, RGBA."""
    out = np.zeros((size, size, 4), np.uint8)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return out
    rgba = np.dstack([rgb, mask.astype(np.uint8) * 255])[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = fill * size / max(rgba.shape[:2])
    w, h = max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    # Premultiply so the transparent surround does not bleed black into the edges.
    rgba = rgba.astype(np.float32)
    rgba[:, :, :3] *= rgba[:, :, 3:] / 255.0
    small = cv2.resize(rgba, (w, h), interpolation=interp)
    alpha = small[:, :, 3:]
    small[:, :, :3] = np.where(alpha > 0, small[:, :, :3] * 255.0 / np.maximum(alpha, 1e-3), 0)
    y0, x0 = (size - h) // 2, (size - w) // 2
    out[y0:y0 + h, x0:x0 + w] = np.clip(small + 0.5, 0, 255).astype(np.uint8)
    return out


def render_object_views(obj_id: int, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """n RGBA uint8 views [n, size, size, 4] of random_urdf obj_id, alpha from the segmentation."""
    p, cid = _pb()
    p.resetSimulation(physicsClientId=cid)
    body = p.loadURDF(sources.object_urdf(obj_id), physicsClientId=cid)
    r = size * SUPERSAMPLE
    views = np.zeros((n, size, size, 4), np.uint8)
    for i in range(n):
        p.resetBasePositionAndOrientation(body, [0, 0, 0], _random_quaternion(rng), physicsClientId=cid)
        lo, hi = (np.asarray(v) for v in p.getAABB(body, physicsClientId=cid))
        centre, radius = (lo + hi) / 2, np.linalg.norm(hi - lo) / 2
        fov = float(rng.uniform(35, 55))
        # Distance at which the bounding sphere just fits; a random factor varies perspective.
        dist = radius / np.tan(np.radians(fov / 2)) * rng.uniform(1.1, 1.6)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        up = [0, 0, 1] if abs(direction[2]) < 0.95 else [0, 1, 0]
        view = p.computeViewMatrix((centre + dist * direction).tolist(), centre.tolist(), up,
                                   physicsClientId=cid)
        proj = p.computeProjectionMatrixFOV(fov, 1.0, dist / 10, dist * 10, physicsClientId=cid)
        rgb, seg = _camera_image(p, cid, r, r, view, proj, _random_light(rng))
        views[i] = _centre_in_view(rgb, seg == body, size, VIEW_FILL * rng.uniform(0.93, 1.07))
    return views


def render_tabletop_scene(obj_ids, size=(256, 256), rng: np.random.Generator | None = None,
                          physics_steps: int = 300, supersample: int = SUPERSAMPLE):
    """Drop obj_ids on the table, simulate, render from a random camera.

    Returns RGB uint8 [H, W, 3] and the instance map int16 [H, W]: the random_urdf id of the object
    seen at each pixel, -1 for the table, floor and sky.
    """
    rng = rng if rng is not None else np.random.default_rng()
    p, cid = _pb()
    h, w = size
    p.resetSimulation(physicsClientId=cid)
    p.setGravity(0, 0, -9.81, physicsClientId=cid)
    plane = p.loadURDF(sources.plane_urdf(), physicsClientId=cid)
    table = p.loadURDF(sources.table_urdf(), physicsClientId=cid)
    # Vary the table and floor colours so "table" is not one texture the detector can memorise.
    p.changeVisualShape(table, -1, rgbaColor=rng.uniform(0.4, 1.0, 3).tolist() + [1], physicsClientId=cid)
    p.changeVisualShape(plane, -1, rgbaColor=rng.uniform(0.3, 1.0, 3).tolist() + [1], physicsClientId=cid)
    body_to_obj = {}
    for i, obj_id in enumerate(obj_ids):
        pos = [rng.uniform(-0.6, 0.6), rng.uniform(-0.38, 0.38), TABLE_TOP_Z + 0.08 + 0.04 * i]
        body = p.loadURDF(sources.object_urdf(int(obj_id)), pos, _random_quaternion(rng),
                          globalScaling=float(rng.uniform(0.8, 1.5)), physicsClientId=cid)
        body_to_obj[body] = int(obj_id)
    for _ in range(physics_steps):
        p.stepSimulation(physicsClientId=cid)
    target = [rng.uniform(-0.35, 0.35), rng.uniform(-0.2, 0.2), TABLE_TOP_Z]
    view = p.computeViewMatrixFromYawPitchRoll(target, float(rng.uniform(0.6, 1.5)),
                                               float(rng.uniform(0, 360)), float(rng.uniform(-80, -25)),
                                               0, 2, physicsClientId=cid)
    proj = p.computeProjectionMatrixFOV(float(rng.uniform(40, 65)), w / h, 0.05, 10, physicsClientId=cid)
    rgb, seg = _camera_image(p, cid, w * supersample, h * supersample, view, proj, _random_light(rng),
                             shadow=rng.random() < 0.5)
    if supersample > 1:
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        seg = seg[supersample // 2::supersample, supersample // 2::supersample]
    lut = np.full(max(body_to_obj, default=0) + 2, -1, np.int16)  # index -1 (background) -> last
    for body, obj_id in body_to_obj.items():
        lut[body] = obj_id
    instances = lut[np.where(seg >= 0, seg & ((1 << 24) - 1), -1)]
    return np.ascontiguousarray(rgb), instances.astype(np.int16)


# ----------------------------------------------------------------------------- CLI workers

def _seed(*parts) -> np.random.Generator:
    return np.random.default_rng([int(x) for x in parts])


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")  # write then rename: a killed run leaves no half file
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _views_task(args):
    obj_id, n, size, seed, out = args
    t0 = time.perf_counter()
    rgba = render_object_views(obj_id, n, size, _seed(seed, 1, obj_id))
    _save_npz(Path(out) / "views" / f"{obj_id:03d}.npz", rgba=rgba)
    return n, time.perf_counter() - t0


def _scenes_task(args):
    split, shard, count, size, seed, out = args
    rng = _seed(seed, 2, sources.SPLITS[split][0], shard)
    ids = sources.split_ids(split)
    images, instances = [], []
    object_ids = np.full((count, MAX_SCENE_OBJECTS), -1, np.int16)
    t0 = time.perf_counter()
    for s in range(count):
        k = int(rng.integers(5, MAX_SCENE_OBJECTS + 1))
        chosen = rng.choice(ids, size=k, replace=False)
        object_ids[s, :k] = chosen
        img, inst = render_tabletop_scene(chosen, tuple(size), rng)
        images.append(img)
        instances.append(inst)
    _save_npz(Path(out) / "scenes" / f"{split}_{shard:04d}.npz", images=np.stack(images),
              instances=np.stack(instances), object_ids=object_ids)
    return count, time.perf_counter() - t0


def _views_done(path: Path, n: int, size: int) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["rgba"].shape == (n, size, size, 4)
    except (OSError, KeyError, ValueError):
        return False


def _run_pool(tasks, fn, workers, desc):
    from tqdm import tqdm
    if not tasks:
        print(f"{desc}: nothing to do (already on disk)", flush=True)
        return
    t0, items = time.perf_counter(), 0
    ctx = mp.get_context("spawn")  # fresh interpreters: no PyBullet client inherited through fork
    with ctx.Pool(workers) if workers > 1 else _InlinePool() as pool:
        for n, _ in tqdm(pool.imap_unordered(fn, tasks), total=len(tasks), desc=desc, mininterval=5):
            items += n
    dt = time.perf_counter() - t0
    print(f"{desc}: {items} in {dt:.1f} s = {items / dt:.1f}/s with {workers} worker(s)", flush=True)


class _InlinePool:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap_unordered(fn, tasks):
        return map(fn, tasks)


def benchmark(rng_seed: int = 0) -> None:
    """Time the documented reference points (one process)."""
    rng = np.random.default_rng(rng_seed)
    t0 = time.perf_counter()
    render_object_views(0, 16, 128, rng)
    print(f"object views 128 px (2x supersampled): {(time.perf_counter() - t0) / 16 * 1e3:.1f} ms/view")
    ids = rng.choice(1000, 48, replace=False)
    t0 = time.perf_counter()
    render_tabletop_scene(ids, (480, 640), rng, physics_steps=0, supersample=1)
    t_load = time.perf_counter() - t0
    p, cid = _pb()
    view = p.computeViewMatrixFromYawPitchRoll([0, 0, TABLE_TOP_Z], 1.2, 30, -50, 0, 2)
    proj = p.computeProjectionMatrixFOV(55, 640 / 480, 0.05, 10)
    t0 = time.perf_counter()
    for _ in range(5):
        _camera_image(p, cid, 640, 480, view, proj, _random_light(rng))
    print(f"640x480 render of 48 objects: {(time.perf_counter() - t0) / 5 * 1e3:.0f} ms "
          f"(scene setup + render {t_load * 1e3:.0f} ms)")
    t0 = time.perf_counter()
    render_tabletop_scene(rng.choice(1000, 12, replace=False), (256, 256), rng)
    print(f"tabletop scene 256x256, 12 objects, 300 steps, 2x supersampled: "
          f"{(time.perf_counter() - t0) * 1e3:.0f} ms")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=sorted(sources.SPLITS), default="train")
    ap.add_argument("--views-per-object", type=int, default=16)
    ap.add_argument("--view-size", type=int, default=128)
    ap.add_argument("--scenes", type=int, default=400)
    ap.add_argument("--scene-size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="data/pybullet")
    ap.add_argument("--ids", type=int, nargs="*", help="render views for these ids only (tests)")
    ap.add_argument("--benchmark", action="store_true", help="time reference renders and exit")
    args = ap.parse_args(argv)
    if args.benchmark:
        benchmark(args.seed)
        return
    out = Path(args.out)
    (out / "views").mkdir(parents=True, exist_ok=True)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    ids = args.ids if args.ids else sources.split_ids(args.split)
    n, v = args.views_per_object, args.view_size
    view_tasks = [(i, n, v, args.seed, str(out)) for i in ids
                  if not _views_done(out / "views" / f"{i:03d}.npz", n, v)]
    _run_pool(view_tasks, _views_task, args.workers, f"{args.split} views")
    scene_tasks = []
    for shard in range((args.scenes + SCENE_SHARD - 1) // SCENE_SHARD):
        count = min(SCENE_SHARD, args.scenes - shard * SCENE_SHARD)
        if not (out / "scenes" / f"{args.split}_{shard:04d}.npz").is_file():
            scene_tasks.append((args.split, shard, count, args.scene_size, args.seed, str(out)))
    _run_pool(scene_tasks, _scenes_task, args.workers, f"{args.split} scenes")


if __name__ == "__main__":
    main()
