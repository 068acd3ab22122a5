"""Rendered RGB-D ground truth for the node's 3D output: products on a table, a registered depth
image, the camera's calibration, and the true 3D centre of each object's visible surface.

A scene is a table plane (z = 0, world z up) with a wall behind it, both textured with a photo, and
procedural products (products.py) standing on the table. PyBullet's TinyRenderer (DIRECT mode)
renders colour, depth and segmentation with one projection, so the three are pixel-aligned: the
depth image is registered to the colour image by construction.

Conventions (the ones ROS uses):
- optical frame: x right, y down, z forward (along the optical axis), metres;
- depth = z of the surface point in that frame (not the distance along the ray), NaN = nothing;
- pixel (u, v) with integer u, v is the centre of that pixel (column u, row v);
- depth PNG: 16-bit, millimetres, 0 = no data (the usual 16UC1 depth camera format).

    camera = scene_camera()
    rgb, depth, ids = render_frame(objects, camera, photo, size=(480, 640))
    centre = visible_centre(depth, ids == 0, camera.intrinsics((480, 640)))   # xyz, metres

    python -m training.data.depth_scene --out out/depth_scene      # the demo's scene folder
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.data import photos as photo_source
from training.data import products
from yolz_ros.runtime import depth as runtime_depth

# The held-out product the project demos with (as in realbench.held_out_sequence): test split,
# family 7 (query 28, siblings 29-31), distractors from the other families.
SPLIT = "test"
FAMILY = 7
QUERY_ID = FAMILY * products.FAMILY_SIZE
SIBLING_IDS = tuple(QUERY_ID + m for m in range(1, products.FAMILY_SIZE))
OTHER_FAMILIES = (3, 11, 19, 26, 33, 41)
SIZE = (480, 640)  # image H, W
MIN_VISIBLE_PIXELS = 20  # fewer visible target pixels than this: the frame counts as "absent"

# Backdrop geometry (world metres): the table top z = 0 for y < WALL_Y, the wall at y = WALL_Y.
TABLE_X = (-1.5, 1.5)
TABLE_Y = (-1.2, 0.45)
WALL_Y = TABLE_Y[1]
WALL_Z = (0.0, 1.5)
TEXTURE = (512, 1024)  # H, W of each half of the backdrop atlas (top: wall, bottom: table)


# ----------------------------------------------------------------------------- calibration

@dataclass(frozen=True)
class Intrinsics(runtime_depth.Intrinsics):
    """The runtime's pinhole intrinsics (yolz_ros.runtime.depth: fx, fy, cx, cy, width, height in ROS's
    pixel-centre convention, no distortion) plus what rendering and calibration files need."""

    @property
    def k(self) -> list[float]:
        """sensor_msgs/CameraInfo.k: the 3x3 camera matrix, row-major."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def p(self) -> list[float]:
        """sensor_msgs/CameraInfo.p: the 3x4 projection matrix (monocular: K | 0), row-major."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] optical-frame points (metres) -> [N, 2] pixel coordinates (u, v)."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        return np.stack([self.fx * pts[:, 0] / pts[:, 2] + self.cx,
                         self.fy * pts[:, 1] / pts[:, 2] + self.cy], axis=1)

    def backproject(self, u, v, z) -> np.ndarray:
        """Pixel coordinates and depths (arrays of one shape) -> [..., 3] optical-frame points."""
        u, v, z = (np.asarray(a, np.float64) for a in (u, v, z))
        return np.stack([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z], axis=-1)

    def to_camera_info_yaml(self, camera_name: str = "camera") -> str:
        """The ROS camera calibration YAML (camera_calibration_parsers layout)."""
        def matrix(rows, cols, data):
            values = ", ".join(f"{float(x):.10g}" for x in data)  # exact enough
            return f"  rows: {rows}\n  cols: {cols}\n  data: [{values}]\n"
        return (f"image_width: {self.width}\nimage_height: {self.height}\n"
                f"camera_name: {camera_name}\n"
                f"camera_matrix:\n{matrix(3, 3, self.k)}"
                "distortion_model: plumb_bob\n"
                f"distortion_coefficients:\n{matrix(1, 5, [0.0] * 5)}"
                f"rectification_matrix:\n{matrix(3, 3, np.eye(3).ravel())}"
                f"projection_matrix:\n{matrix(3, 4, self.p)}")

    @classmethod
    def from_camera_info_yaml(cls, text: str) -> "Intrinsics":
        """Intrinsics from a ROS camera calibration YAML (K's fx, fy, cx, cy; D is not kept).
        Raises ValueError when the text is not such a file."""
        info = runtime_depth.parse_camera_info(text)
        k = info["k"]
        return cls(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=info["width"],
                   height=info["height"])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at `eye` looking at `target` (world metres), `up` roughly up in the image,
    vertical field of view `fov_deg`; near/far bound PyBullet's depth buffer."""
    eye: tuple
    target: tuple
    up: tuple = (0.0, 0.0, 1.0)
    fov_deg: float = 45.0
    near: float = 0.05
    far: float = 6.0

    def intrinsics(self, size=SIZE) -> Intrinsics:
        """The intrinsics of PyBullet's TinyRenderer at size (H, W), measured, not assumed:
        it samples pixel column u at NDC x = 2u/W - 1 (so cx = W/2, not W/2 - 0.5), and its
        flipped rows put row v at NDC y = 1 - 2(v + 1)/H (so cy = H/2 - 1). f from the FOV."""
        h, w = size
        f = (h / 2) / np.tan(np.radians(self.fov_deg) / 2)  # square pixels: fx = fy
        return Intrinsics(fx=float(f), fy=float(f), cx=w / 2, cy=h / 2 - 1, width=w, height=h)

    def rotation(self) -> np.ndarray:
        """[3, 3] world -> optical rotation: rows are the optical x (right), y (down), z (forward)
        axes in world coordinates."""
        forward = np.subtract(self.target, self.eye).astype(np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, self.up)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def to_optical(self, points_world: np.ndarray) -> np.ndarray:
        """[N, 3] world points -> [N, 3] optical-frame points (metres)."""
        pts = np.asarray(points_world, np.float64).reshape(-1, 3)
        return (pts - np.asarray(self.eye, np.float64)) @ self.rotation().T

    def matrices(self, size=SIZE):
        """PyBullet (view, projection) matrices for an image of size (H, W)."""
        p, _ = products._client()
        view = p.computeViewMatrix(list(map(float, self.eye)), list(map(float, self.target)),
                                   list(map(float, self.up)))
        proj = p.computeProjectionMatrixFOV(self.fov_deg, size[1] / size[0], self.near, self.far)
        return view, proj

    def metric_depth(self, buffer: np.ndarray) -> np.ndarray:
        """PyBullet's non-linear depth buffer in [0, 1] -> z in metres (the OpenGL inverse)."""
        buffer = np.asarray(buffer, np.float64)
        return self.far * self.near / (self.far - (self.far - self.near) * buffer)


def scene_camera() -> Camera:
    """The demo camera: ~0.8 m from the table centre, looking down ~30 degrees (the 8.5 cm jar
    is ~22% of the image height)."""
    return Camera(eye=(0.0, -0.687, 0.459), target=(0.0, 0.02, 0.05))


# ----------------------------------------------------------------------------- rendering

_BACKDROP_DIR: list = []  # this process's folder of backdrop meshes/textures (deleted at exit)


def _backdrop_files(background) -> tuple[Path, Path]:
    """OBJ + texture of the wall and table quads for `background` (an RGB image, or a pair of
    (wall, table) RGB images); written once per distinct image."""
    wall, table = background if isinstance(background, (tuple, list)) else \
        (background, np.ascontiguousarray(background[::-1, ::-1]))
    th, tw = TEXTURE
    atlas = np.concatenate([cv2.resize(np.asarray(img, np.uint8), (tw, th),
                                       interpolation=cv2.INTER_AREA) for img in (wall, table)])
    key = hashlib.sha1(atlas.tobytes()).hexdigest()[:16]
    if not _BACKDROP_DIR:
        _BACKDROP_DIR.append(tempfile.TemporaryDirectory(prefix="yolz_depth_scene_"))
    folder = Path(_BACKDROP_DIR[0].name)
    obj, tex = folder / f"backdrop_{key}.obj", folder / f"backdrop_{key}.png"
    if not tex.is_file():
        cv2.imwrite(str(tex), cv2.cvtColor(atlas, cv2.COLOR_RGB2BGR))
        (x0, x1), (y0, y1), (z0, z1) = TABLE_X, TABLE_Y, WALL_Z
        # Corners (x, y, z) and texture (u, v up): wall = atlas top half, table = bottom half.
        quads = [([(x0, WALL_Y, z0), (x1, WALL_Y, z0), (x1, WALL_Y, z1), (x0, WALL_Y, z1)],
                  [(0, 0.5), (1, 0.5), (1, 1), (0, 1)], (0, -1, 0)),
                 ([(x0, y0, 0), (x1, y0, 0), (x1, y1, 0), (x0, y1, 0)],
                  [(0, 0), (1, 0), (1, 0.5), (0, 0.5)], (0, 0, 1))]
        lines = []
        for q, (corners, uvs, n) in enumerate(quads):
            lines += [f"v {x} {y} {z}" for x, y, z in corners]
            lines += [f"vt {u} {v}" for u, v in uvs]
            lines += [f"vn {n[0]} {n[1]} {n[2]}"] * 4
            a = 4 * q + 1
            lines += [f"f {a}/{a}/{a} {a + 1}/{a + 1}/{a + 1} {a + 2}/{a + 2}/{a + 2}",
                      f"f {a}/{a}/{a} {a + 2}/{a + 2}/{a + 2} {a + 3}/{a + 3}/{a + 3}"]
        obj.write_text("\n".join(lines) + "\n")
    return obj, tex


def _add_textured_mesh(obj: Path, tex: Path, position, yaw: float = 0.0) -> int:
    p, cid = products._client()
    vs = p.createVisualShape(p.GEOM_MESH, fileName=str(obj), physicsClientId=cid)
    body = p.createMultiBody(baseVisualShapeIndex=vs, basePosition=list(map(float, position)),
                             baseOrientation=p.getQuaternionFromEuler([0, 0, float(yaw)]),
                             physicsClientId=cid)
    tid = p.loadTexture(str(tex), physicsClientId=cid)
    p.changeVisualShape(body, -1, textureUniqueId=tid, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
    return body


def render_frame(objects, camera: Camera, background, size=SIZE, data_dir="data"):
    """Render products standing on the table in front of the photo-textured wall.

    objects: [(ProductSpec, (x, y, z) of its base centre in world metres, yaw radians)];
    background: an RGB uint8 image (wall; the table shows it turned 180 degrees) or a pair
    (wall, table) of RGB images. Returns (rgb uint8 [H, W, 3], depth float32 [H, W] metres = z
    in the optical frame, NaN where nothing was hit, instance ids int32 [H, W]: index into
    `objects`, -1 for the backdrop and nothing). Intrinsics: camera.intrinsics(size)."""
    p, cid = products._client()
    h, w = size
    p.resetSimulation(physicsClientId=cid)
    _add_textured_mesh(*_backdrop_files(background), (0, 0, 0))
    bodies = []
    for spec, position, yaw in objects:
        folder = Path(data_dir) / "products" / spec.split / f"{spec.product_id:04d}"
        bodies.append(_add_textured_mesh(*products.write_obj(spec, folder, data_dir), position, yaw))
    view, proj = camera.matrices(size)
    # Light from above, behind the camera's left shoulder; no shadows (TinyRenderer's are slow).
    _, _, rgba, buffer, seg = p.getCameraImage(
        w, h, view, proj, renderer=p.ER_TINY_RENDERER, lightDirection=[-0.4, -1.0, 1.6],
        lightAmbientCoeff=0.6, lightDiffuseCoeff=0.45, lightSpecularCoeff=0.1, shadow=0,
        physicsClientId=cid)
    rgb = np.asarray(rgba, np.uint8).reshape(h, w, 4)[:, :, :3].copy()
    seg = np.asarray(seg).reshape(h, w)
    depth = camera.metric_depth(np.asarray(buffer).reshape(h, w)).astype(np.float32)
    depth[seg < 0] = np.nan  # seg -1: the ray hit nothing (not even the backdrop)
    ids = np.full((h, w), -1, np.int32)
    for index, body in enumerate(bodies):
        ids[seg == body] = index
    return rgb, depth, ids


# ----------------------------------------------------------------------------- ground truth

def visible_centre(depth: np.ndarray, mask: np.ndarray, intrinsics: Intrinsics):
    """Mean of the back-projected 3D points (optical frame, metres) of the mask's pixels with
    valid depth (finite, > 0): the true centre of the visible surface. None when there are none."""
    valid = np.asarray(mask, bool) & np.isfinite(depth) & (depth > 0)
    v, u = np.nonzero(valid)
    if len(u) == 0:
        return None
    return intrinsics.backproject(u, v, depth[v, u]).mean(axis=0)


def box_of(mask: np.ndarray):
    """[x0, y0, x1, y1] pixel box of the mask (x1, y1 exclusive: width = x1 - x0), or None."""
    v, u = np.nonzero(mask)
    if len(u) == 0:
        return None
    return [int(u.min()), int(v.min()), int(u.max()) + 1, int(v.max()) + 1]


def depth_to_png_mm(depth: np.ndarray) -> np.ndarray:
    """Depth in metres (NaN = none) -> uint16 millimetres, 0 = no data (also beyond 65.535 m)."""
    mm = np.where(np.isfinite(depth), np.round(np.nan_to_num(depth) * 1000.0), 0)
    mm[(mm < 0) | (mm > 65535)] = 0
    return mm.astype(np.uint16)


def write_depth_png(path, depth: np.ndarray) -> None:
    if not cv2.imwrite(str(path), depth_to_png_mm(depth)):
        raise OSError(f"cannot write {path}")


def read_depth_png(path) -> np.ndarray:
    """A 16-bit millimetre depth PNG -> float32 metres, NaN where 0 (no data)."""
    mm = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mm is None or mm.dtype != np.uint16 or mm.ndim != 2:
        raise ValueError(f"{path} is not a single-channel 16-bit depth PNG")
    depth = mm.astype(np.float32) / 1000.0
    depth[mm == 0] = np.nan
    return depth


# ----------------------------------------------------------------------------- sequences

def _footprint(spec) -> float:
    """Radius (metres) of the circle around the product's base, whatever its yaw."""
    w, d, _ = spec.size
    return 0.5 * float(np.hypot(w, d)) if spec.kind == "box" else float(w)


def scene_objects(seed: int = 0, siblings: bool = False):
    """(target spec, [(spec, (x, y, z)) of 2 flanking and 2 other products]) of the demo,
    deterministic from the seed. Two products flank the target, two stand behind; with
    ``siblings`` the flanking two are the target's same-shape siblings (the hard case: the
    shipped model often takes a sibling for the target), else products of other families."""
    rng = np.random.default_rng([seed, 1])
    target = products.product_spec(SPLIT, QUERY_ID)
    families = [int(f) for f in rng.choice(OTHER_FAMILIES, 4, replace=False)]
    if siblings:
        flanking = [products.product_spec(SPLIT, int(i))
                    for i in rng.choice(SIBLING_IDS, 2, replace=False)]
    else:
        flanking = [products.product_spec(SPLIT, f * products.FAMILY_SIZE +
                                          int(rng.integers(products.FAMILY_SIZE)))
                    for f in families[2:]]
    others = [products.product_spec(SPLIT, f * products.FAMILY_SIZE +
                                    int(rng.integers(products.FAMILY_SIZE)))
              for f in families[:2]]
    siblings = flanking
    gap = 0.02  # metres between neighbouring footprints
    side = _footprint(target) + gap
    placed = [(siblings[0], (-(side + _footprint(siblings[0])), 0.06, 0.0)),
              (siblings[1], (side + _footprint(siblings[1]), 0.06, 0.0))]
    back_y = 0.06 + max(_footprint(s) for s in siblings) + gap
    for spec, x in zip(others, (-0.12, 0.14)):
        placed.append((spec, (x, back_y + _footprint(spec), 0.0)))
    return target, placed


def _target_poses(n: int, rng) -> list:
    """n target poses ((x, y, z), yaw) along a smooth path across the front of the table, or
    None where the target is absent (frames 8-9 of every 10)."""
    phase = rng.uniform(0, 2 * np.pi, 2)
    poses = []
    for i in range(n):
        t = i / n  # one lap over the sequence
        x = 0.18 * np.sin(2 * np.pi * t + phase[0])
        y = -0.13 + 0.03 * np.sin(4 * np.pi * t + phase[1])  # behind -0.10: clear of the siblings
        poses.append(None if i % 10 in (8, 9) else ((x, y, 0.0), 2 * np.pi * t))
    return poses


def _truth(depth, ids, index, intrinsics) -> dict:
    mask = ids == index
    count = int(mask.sum())
    centre = visible_centre(depth, mask, intrinsics) if count >= MIN_VISIBLE_PIXELS else None
    return {"visible": centre is not None,
            "centre_m": None if centre is None else [round(float(c), 6) for c in centre],
            "box": box_of(mask) if centre is not None else None, "visible_pixels": count}


def _write_frame(folder: Path, i: int, rgb, depth, target_mask, rng) -> None:
    """color/ (RGB + sensor noise), depth/ (uint16 mm) and mask/ (255 = the target's visible
    pixels) PNGs of frame i."""
    cv2.imwrite(str(folder / "mask" / f"{i:06d}.png"), target_mask.astype(np.uint8) * 255)
    noisy = np.clip(rgb.astype(np.float32) + rng.normal(0, 2.0, rgb.shape), 0, 255)
    cv2.imwrite(str(folder / "color" / f"{i:06d}.png"),
                cv2.cvtColor(noisy.astype(np.uint8), cv2.COLOR_RGB2BGR))
    write_depth_png(folder / "depth" / f"{i:06d}.png", depth)


def _backgrounds(rng, data_dir) -> tuple:
    """(wall, table) photo crops of the test split's photo pool (held-out backgrounds)."""
    pool = photo_source.photo_pool(SPLIT, str(data_dir))
    if not pool:
        raise FileNotFoundError(f"no photos for split {SPLIT!r}: see training/data/photos.py")
    pick = rng.choice(len(pool), 2, replace=len(pool) < 2)
    th, tw = TEXTURE
    return tuple(photo_source.random_crop(pool[int(j)], th, tw, rng, 0.5) for j in pick)


def _views(rng, data_dir) -> np.ndarray:
    """The target's 8 RGBA reference views [8, 128, 128, 4], exactly as the benchmark makes them."""
    from training.data.realbench import ObjectSource
    return ObjectSource(SPLIT, str(data_dir), with_stamps=False).views(QUERY_ID, rng)


def register_command(box, size, name: str, margin: int = 4) -> str:
    h, w = size
    x0, y0, x1, y1 = box
    x0, y0, x1, y1 = max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), \
        min(h, y1 + margin)
    return f"ros2 run yolz_ros register_from_camera {name} --box {x0} {y0} {x1} {y1}"


def make_sequence(out_dir, frames_still: int = 10, frames_moving: int = 30, seed: int = 0,
                  size=SIZE, data_dir="data", name: str = "jar", with_views: bool = True,
                  siblings: bool = False) -> dict:
    """Write the scene folder and return its truth (also written as truth.json):
    {still,moving}/{color,depth,mask}/NNNNNN.png, camera_info.yaml, truth.json, views/.

    still/: the target between 2 products (its siblings with ``siblings``), 2 more behind, frames_still frames (one
    render, fresh sensor noise per frame). moving/: the target along a path at changing yaw,
    absent in frames 8-9 of every 10. Colour PNG (RGB), depth PNG (uint16 mm, 0 = no data)."""
    out = Path(out_dir)
    rng = np.random.default_rng([seed, 0])
    camera = scene_camera()
    intr = camera.intrinsics(size)
    target, others = scene_objects(seed, siblings)
    background = _backgrounds(rng, data_dir)
    parts = {}
    for part in ("still", "moving"):
        for sub in ("color", "depth", "mask"):
            (out / part / sub).mkdir(parents=True, exist_ok=True)
    # still: one render, the target at the origin, facing the camera (yaw 0)
    objects = [(target, (0.0, 0.0, 0.0), 0.0)] + [(s, pos, 0.0) for s, pos in others]
    rgb, depth, ids = render_frame(objects, camera, background, size, data_dir)
    parts["still"] = []
    for i in range(frames_still):
        _write_frame(out / "still", i, rgb, depth, ids == 0, rng)
        parts["still"].append({"frame": i, "target_world": [0.0, 0.0, 0.0], "yaw": 0.0,
                               **_truth(depth, ids, 0, intr)})
    # moving: the others stay, the target travels in front of them
    parts["moving"] = []
    for i, pose in enumerate(_target_poses(frames_moving, rng)):
        placed = [(s, pos, 0.0) for s, pos in others]
        if pose is not None:
            placed.insert(0, (target, pose[0], pose[1]))
        rgb, depth, ids = render_frame(placed, camera, background, size, data_dir)
        index = 0 if pose is not None else -2  # -2: no pixel carries it
        _write_frame(out / "moving", i, rgb, depth, ids == index, rng)
        parts["moving"].append({"frame": i,
                                "target_world": None if pose is None else list(pose[0]),
                                "yaw": None if pose is None else float(pose[1]),
                                **_truth(depth, ids, index, intr)})
    (out / "camera_info.yaml").write_text(intr.to_camera_info_yaml("camera"))
    if with_views:
        (out / "views").mkdir(exist_ok=True)
        for j, view in enumerate(_views(rng, data_dir)):
            cv2.imwrite(str(out / "views" / f"view_{j:03d}.png"),
                        cv2.cvtColor(view, cv2.COLOR_RGBA2BGRA))
    still_box = parts["still"][0]["box"]
    truth = {
        "target": {"name": target.name, "split": SPLIT, "product_id": QUERY_ID,
                   "kind": target.kind, "size_m": list(target.size)},
        "others": [s.name for s, _ in others],
        "seed": seed, "siblings": siblings, "image_size": list(size), "frame_id": "camera",
        "intrinsics": {"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy},
        "camera": {"eye": list(camera.eye), "target": list(camera.target),
                   "up": list(camera.up), "fov_deg": camera.fov_deg},
        "conventions": "centre_m: mean 3D point of the target's visible pixels, camera optical "
                       "frame (x right, y down, z forward), metres; box: [x0, y0, x1, y1] "
                       "pixels, x1/y1 exclusive; depth PNG: uint16 millimetres, 0 = no data",
        "register_command": register_command(still_box, size, name) if still_box else None,
        "parts": parts,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render the RGB-D demo scene of the held-out "
                                             "product (deterministic from --seed).")
    ap.add_argument("--out", type=Path, default=Path("out/depth_scene"))
    ap.add_argument("--frames-still", type=int, default=10)
    ap.add_argument("--frames-moving", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="jar", help="object name in the printed register command")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--siblings", action="store_true",
                    help="flank the target with its same-shape siblings (the hard case)")
    ap.add_argument("--photo-free", action="store_true",
                    help="backgrounds and labels from scikit-image's bundled photos only "
                         "(no package downloads; caches in DATA_DIR/photo_free)")
    args = ap.parse_args(argv)
    data_dir = args.data_dir
    if args.photo_free:  # what tests/conftest.py's photo_free fixture does, with its own caches
        photo_source.photo_files = lambda data_dir="data": {}
        photo_source.photo_pool.cache_clear()
        data_dir = str(Path(args.data_dir) / "photo_free")
    truth = make_sequence(args.out, args.frames_still, args.frames_moving, args.seed,
                          data_dir=data_dir, name=args.name, siblings=args.siblings)
    moving = truth["parts"]["moving"]
    print(f"{args.out}: still {len(truth['parts']['still'])} frames, moving {len(moving)} "
          f"({sum(not f['visible'] for f in moving)} without the target); truth.json, "
          "camera_info.yaml, views/")
    print(f"play:     ros2 run yolz_ros camera_player {args.out}/still/color --depth "
          f"{args.out}/still/depth --camera-info {args.out}/camera_info.yaml --loop")
    print(f"register: {truth['register_command']}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
