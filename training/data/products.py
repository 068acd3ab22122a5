"""Procedural product-like objects with photo/text labels, rendered in 3D by PyBullet.

Groceries are what a household robot meets and what untextured shapes never taught the model:
boxes, cans, jars and bottles whose faces carry labels. Each product is a mesh with UVs (written as
OBJ) and a texture atlas made of real photo crops (training/data/photos.py, from the product's own
split), rendered brand-like text, colour bands and simple logos. Products come in families of
FAMILY_SIZE: members share the shape and size (and in half of the families their colours) and differ
in label layout, photo crop, text and logo, so every scene can hold the same-kind distractor
("another box beside the box") that only appearance tells apart.

    spec = product_spec("train", 17)          # deterministic from (split, id)
    views, dirs = render_views(spec, dirs, 128, data_dir)   # RGBA renders from given directions

Ids: train 0-1599, val 0-199, test 0-199 (separate photo pools per split; ids never cross splits).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.data import photos as photo_source

FAMILY_SIZE = 4
NUM_PRODUCTS = {"train": 1600, "val": 200, "test": 200}
KINDS = ("box", "can", "jar", "bottle")
ATLAS = (512, 1024)  # texture H, W
SYLLABLES = ("ka", "lo", "mi", "ra", "to", "ne", "su", "vo", "ba", "zi", "po", "la", "de", "fu",
             "xo", "yu", "gra", "tri", "blo", "cre", "sna", "fla", "mo", "ri", "qui", "ste")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_PLAIN)


def _rng(*parts) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class ProductSpec:
    split: str
    product_id: int
    kind: str
    size: tuple  # metres: box (w, d, h); can/jar/bottle (radius, radius, h)

    @property
    def family(self) -> int:
        return self.product_id // FAMILY_SIZE

    @property
    def name(self) -> str:
        return f"prod:{self.split}:{self.product_id}"


def product_ids(split: str) -> list[int]:
    if split not in NUM_PRODUCTS:
        raise ValueError(f"unknown split {split!r}")
    return list(range(NUM_PRODUCTS[split]))


def product_spec(split: str, product_id: int) -> ProductSpec:
    fam = _rng("family", split, product_id // FAMILY_SIZE)
    kind = KINDS[int(fam.integers(len(KINDS)))]
    jitter = 1 + _rng("member", split, product_id).uniform(-0.06, 0.06, 3)
    if kind == "box":
        base = np.array([fam.uniform(0.05, 0.2), fam.uniform(0.03, 0.08), fam.uniform(0.08, 0.3)])
        if fam.random() < 0.25:  # some boxes lie flat (biscuits, tea)
            base = base[[0, 2, 1]]
    elif kind == "can":
        r = fam.uniform(0.025, 0.05)
        base = np.array([r, r, fam.uniform(1.6, 3.2) * r])
    elif kind == "jar":
        r = fam.uniform(0.035, 0.07)
        base = np.array([r, r, fam.uniform(0.9, 1.8) * r])
    else:
        r = fam.uniform(0.025, 0.045)
        base = np.array([r, r, fam.uniform(4.0, 7.0) * r])
    size = base * jitter
    if kind != "box":
        size[1] = size[0]
    return ProductSpec(split, int(product_id), kind, tuple(float(s) for s in size))


# ----------------------------------------------------------------------------- textures

def _word(rng, n_min=2, n_max=4) -> str:
    return "".join(SYLLABLES[i] for i in rng.integers(len(SYLLABLES), size=rng.integers(n_min, n_max + 1)))


def _palette(rng) -> np.ndarray:
    """Three RGB colours: background, accent, text (text contrasts with the background)."""
    hsv = np.array([[rng.integers(180), rng.integers(40, 256), rng.integers(60, 256)]
                    for _ in range(3)], np.uint8)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.int32)
    if abs(int(rgb[2].mean()) - int(rgb[0].mean())) < 90:
        rgb[2] = 255 - rgb[0]
    return rgb


def _put_text(img, text, rng, colour, box):
    """Write `text` fitted into box (x0, y0, x1, y1) with a random Hershey font."""
    x0, y0, x1, y1 = box
    font = FONTS[int(rng.integers(len(FONTS)))]
    thick = int(rng.integers(1, 4))
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
    scale = min((x1 - x0) / max(tw, 1), (y1 - y0) / max(th, 1)) * rng.uniform(0.6, 0.95)
    thick = max(1, int(round(thick * max(scale, 1) * 0.8)))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (int(x0 + ((x1 - x0) - tw) / 2), int(y0 + ((y1 - y0) + th) / 2))
    cv2.putText(img, text, org, font, scale, tuple(int(c) for c in colour), thick, cv2.LINE_AA)


def _panel(h, w, palette, layout_rng, member, photos) -> np.ndarray:
    """One label panel: colours from `palette`, layout (bands, gradient, photo window position)
    from `layout_rng`, and the member's own photo crop, words and accents."""
    bg, accent, ink = _palette(palette)
    accent = np.clip(accent + member.integers(-40, 41, 3), 0, 255)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    if layout_rng.random() < 0.5:  # vertical gradient towards the accent colour
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] * layout_rng.uniform(0.3, 0.8)
        img[:] = (bg * (1 - t) + accent * t).astype(np.uint8)
    layout = int(layout_rng.integers(3))
    for _ in range(int(layout_rng.integers(0, 4))):  # horizontal colour bands
        y = int(h * (0.1 + 0.8 * layout_rng.random()))
        cv2.rectangle(img, (0, y), (w, y + int(h * layout_rng.uniform(0.02, 0.08))),
                      tuple(int(c) for c in accent), -1)
    if photos:  # the member's own photo crop: what makes it THIS product
        photo = photos[int(member.integers(len(photos)))]
        ph, pw = int(h * member.uniform(0.35, 0.6)), int(w * member.uniform(0.5, 0.9))
        crop = photo_source.random_crop(photo, ph, pw, member)
        y = int(h * (0.42 if layout == 0 else 0.08 if layout == 1 else 0.3))
        y = min(y, h - ph)
        x = (w - pw) // 2
        if member.random() < 0.3:  # round window
            mask = np.zeros((ph, pw), np.uint8)
            cv2.ellipse(mask, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, 255, -1)
            region = img[y:y + ph, x:x + pw]
            region[mask > 0] = crop[mask > 0]
        else:
            img[y:y + ph, x:x + pw] = crop
    ty = (0.05, 0.3) if layout != 1 else (0.65, 0.9)
    _put_text(img, _word(member).upper(), member, ink, (int(w * 0.05), int(h * ty[0]),
                                                         int(w * 0.95), int(h * ty[1])))
    if member.random() < 0.7:
        _put_text(img, _word(member, 1, 3) + " " + str(int(member.integers(10, 999))), member,
                  accent if layout else ink,
                  (int(w * 0.15), int(h * 0.88), int(w * 0.85), int(h * 0.98)))
    if member.random() < 0.5:  # logo
        c = (int(w * member.uniform(0.15, 0.85)), int(h * member.uniform(0.1, 0.9)))
        cv2.circle(img, c, int(min(h, w) * member.uniform(0.05, 0.12)),
                   tuple(int(v) for v in member.integers(0, 256, 3)), -1, cv2.LINE_AA)
    return img


def product_texture(spec: ProductSpec, photos) -> np.ndarray:
    """The RGB texture atlas [512, 1024]; layout per kind matches `_mesh`'s UVs.

    Siblings always share shape and size; in half of the families they also share their colours
    (the same-colour hard negative), otherwise each member has its own. Layout, photo crop, words
    and logo are always the member's own."""
    split, pid = spec.split, spec.product_id
    shares_colours = _rng("family-colours", split, spec.family).random() < 0.5
    owner = ("family", spec.family) if shares_colours else ("member", pid)
    pal = lambda part: _rng("palette", part, split, *owner)  # noqa: E731
    lay = lambda part: _rng("layout", part, split, pid)  # noqa: E731
    member = _rng("member", split, pid)
    H, W = ATLAS
    atlas = np.empty((H, W, 3), np.uint8)
    if spec.kind == "box":  # top row: front, right, back, left; bottom row: top, bottom, spare
        front = _panel(H // 2, W // 4, pal("front"), lay("front"), member, photos)
        side = _panel(H // 2, W // 4, pal("side"), lay("side"), member, photos[:0])
        back = _panel(H // 2, W // 4, pal("back"), lay("back"), member, photos)
        atlas[:H // 2, :W // 4] = front
        atlas[:H // 2, W // 4:W // 2] = side
        atlas[:H // 2, W // 2:3 * W // 4] = back
        atlas[:H // 2, 3 * W // 4:] = side[:, ::-1]
        atlas[H // 2:] = _palette(pal("front"))[0]
        atlas[H // 2:, :W // 4] = cv2.resize(front, (W // 4, H // 2))[::-1]
    else:  # side wraps the top 3/4 (u = angle), caps/lids use the bottom quarter
        wrap = _panel(3 * H // 4, W // 2, pal("front"), lay("front"), member, photos)
        wrap2 = _panel(3 * H // 4, W // 2, pal("back"), lay("back"), member, photos)
        atlas[:3 * H // 4] = np.concatenate([wrap, wrap2], axis=1)
        cap = {"can": (180, 180, 185), "jar": tuple(int(c) for c in _palette(pal("cap"))[1]),
               "bottle": tuple(int(c) for c in _palette(pal("cap"))[2])}[spec.kind]
        atlas[3 * H // 4:] = cap
        if spec.kind == "bottle":  # above and below the label band: plastic/glass colour
            atlas[:int(0.22 * H)] = _palette(pal("body"))[0] // 2 + 60
    return atlas


# ----------------------------------------------------------------------------- meshes

def _lathe(profile, segments, v_of_height, cap_v):
    """Vertices/uvs/normals/faces of a surface of revolution; profile = [(radius, z), ...] bottom->top."""
    verts, uvs, norms, faces = [], [], [], []
    ring = []
    for j, (r, z) in enumerate(profile):
        row = []
        for i in range(segments + 1):
            a = 2 * np.pi * i / segments
            verts.append((r * np.cos(a), r * np.sin(a), z))
            uvs.append((i / segments, v_of_height(z)))
            norms.append((np.cos(a), np.sin(a), 0.0))
            row.append(len(verts) - 1)
        ring.append(row)
    for j in range(len(profile) - 1):
        for i in range(segments):
            a, b, c, d = ring[j][i], ring[j][i + 1], ring[j + 1][i + 1], ring[j + 1][i]
            faces += [(a, b, c), (a, c, d)]
    for (r, z), up in ((profile[0], -1.0), (profile[-1], 1.0)):  # caps as fans
        centre = len(verts)
        verts.append((0.0, 0.0, z)), uvs.append((0.5, cap_v(0.0))), norms.append((0, 0, up))
        first = len(verts)
        for i in range(segments + 1):
            a = 2 * np.pi * i / segments
            verts.append((r * np.cos(a), r * np.sin(a), z))
            uvs.append((0.5 + 0.45 * np.cos(a), cap_v(np.sin(a))))
            norms.append((0, 0, up))
        for i in range(segments):
            f = (centre, first + i, first + i + 1)
            faces.append(f if up > 0 else f[::-1])
    return verts, uvs, norms, faces


def _mesh(spec: ProductSpec):
    """(vertices, uvs as image fractions (x, y), normals, triangles) of the product, z up from 0."""
    if spec.kind == "box":
        w, d, h = spec.size
        hx, hy = w / 2, d / 2
        quads = [  # (corners bottom-left, bottom-right, top-right, top-left), atlas cell (col, row)
            (((-hx, -hy, 0), (hx, -hy, 0), (hx, -hy, h), (-hx, -hy, h)), (0, 0), (0, -1, 0)),
            (((hx, -hy, 0), (hx, hy, 0), (hx, hy, h), (hx, -hy, h)), (1, 0), (1, 0, 0)),
            (((hx, hy, 0), (-hx, hy, 0), (-hx, hy, h), (hx, hy, h)), (2, 0), (0, 1, 0)),
            (((-hx, hy, 0), (-hx, -hy, 0), (-hx, -hy, h), (-hx, hy, h)), (3, 0), (-1, 0, 0)),
            (((-hx, -hy, h), (hx, -hy, h), (hx, hy, h), (-hx, hy, h)), (0, 1), (0, 0, 1)),
            (((-hx, hy, 0), (hx, hy, 0), (hx, -hy, 0), (-hx, -hy, 0)), (1, 1), (0, 0, -1)),
        ]
        verts, uvs, norms, faces = [], [], [], []
        for corners, (col, row), n in quads:
            base = len(verts)
            for k, c in enumerate(corners):
                fx = (col + (1 if k in (1, 2) else 0)) / 4
                fy = (row + (0 if k in (2, 3) else 1)) / 2  # image y: top of the cell is the face top
                verts.append(c), uvs.append((fx, fy)), norms.append(n)
            faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
        return verts, uvs, norms, faces
    r, _, h = spec.size
    wrap_v = lambda z: 0.75 * (1 - z / h)  # noqa: E731 - image y of height z on the wrap
    cap_v = lambda s: 0.875 + 0.12 * s  # noqa: E731
    if spec.kind == "bottle":
        neck = 0.35 * r
        profile = [(r, 0.0), (r, 0.62 * h), (0.8 * r, 0.72 * h), (neck, 0.82 * h), (neck, h)]
        wrap_v = lambda z: 0.22 + 0.53 * (1 - z / (0.62 * h)) if z <= 0.62 * h else 0.1  # noqa: E731
    elif spec.kind == "jar":
        profile = [(r, 0.0), (r, 0.85 * h), (0.92 * r, 0.88 * h), (0.92 * r, h)]
    else:
        profile = [(0.93 * r, 0.0), (r, 0.04 * h), (r, 0.96 * h), (0.93 * r, h)]
    return _lathe(profile, 40, wrap_v, cap_v)


def write_obj(spec: ProductSpec, folder: Path, data_dir: str | os.PathLike = "data"
              ) -> tuple[Path, Path]:
    """product.obj + texture.png of the product in `folder` (created; cached by spec)."""
    folder.mkdir(parents=True, exist_ok=True)
    obj, tex = folder / "product.obj", folder / "texture.png"
    if obj.is_file() and tex.is_file():
        return obj, tex
    pool = photo_source.photo_pool(spec.split, str(data_dir))
    atlas = product_texture(spec, list(pool))
    verts, uvs, norms, faces = _mesh(spec)
    lines = [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in verts]
    lines += [f"vt {u:.5f} {1 - v:.5f}" for u, v in uvs]  # OBJ's v grows upwards
    lines += [f"vn {x:.4f} {y:.4f} {z:.4f}" for x, y, z in norms]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}/{i + 1}" for i in f) for f in faces]
    tmp_obj, tmp_tex = folder / f"product.{os.getpid()}.tmp.obj", folder / f"texture.{os.getpid()}.tmp.png"
    tmp_obj.write_text("\n".join(lines) + "\n")
    cv2.imwrite(str(tmp_tex), cv2.cvtColor(atlas, cv2.COLOR_RGB2BGR))
    tmp_tex.replace(tex)
    tmp_obj.replace(obj)
    return obj, tex


# ----------------------------------------------------------------------------- rendering

_PB = {}


def _client():
    if "p" not in _PB:
        import pybullet as p
        _PB["p"] = p
        _PB["cid"] = p.connect(p.DIRECT)
    return _PB["p"], _PB["cid"]


def random_directions(n: int, rng: np.random.Generator, min_el: float = -15, max_el: float = 70):
    """n unit view directions (object -> camera), azimuth uniform, elevation in degrees range."""
    az = rng.uniform(0, 2 * np.pi, n)
    el = np.radians(rng.uniform(min_el, max_el, n))
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)


def render(spec: ProductSpec, directions: np.ndarray, size: int, rng: np.random.Generator,
           data_dir: str | os.PathLike = "data", supersample: int = 2) -> np.ndarray:
    """RGBA renders [len(directions), size, size, 4] of the product seen from `directions`
    (object -> camera unit vectors), the object filling ~85% of the square, random light and roll.
    Rendered at `supersample` x the size and area-downsampled, so edges and alpha are smooth."""
    folder = Path(data_dir) / "products" / spec.split / f"{spec.product_id:04d}"
    obj, tex = write_obj(spec, folder, data_dir)
    w, d, h = spec.size
    extent = (w, d, h) if spec.kind == "box" else (2 * w, 2 * d, h)
    return render_meshes([(obj, tex, None)], extent, directions, size, rng, supersample)


def render_meshes(parts, extent, directions: np.ndarray, size: int, rng: np.random.Generator,
                  supersample: int = 2) -> np.ndarray:
    """RGBA renders [len(directions), size, size, 4] of an object made of mesh `parts`
    [(obj path, texture path or None, rgba colour or None)], each its own body (TinyRenderer keeps
    one material per mesh), standing on z = 0 inside a box of `extent` (x, y, z metres) centred
    on the z axis; alpha is the segmentation mask of all parts. See `render`."""
    p, cid = _client()
    p.resetSimulation(physicsClientId=cid)
    bodies = []
    for obj, tex, rgba_colour in parts:
        vs = p.createVisualShape(p.GEOM_MESH, fileName=str(obj), physicsClientId=cid)
        body = p.createMultiBody(baseVisualShapeIndex=vs, physicsClientId=cid)
        if tex is not None:
            tid = p.loadTexture(str(tex), physicsClientId=cid)
            p.changeVisualShape(body, -1, textureUniqueId=tid, rgbaColor=[1, 1, 1, 1],
                                physicsClientId=cid)
        else:
            p.changeVisualShape(body, -1, rgbaColor=list(rgba_colour or (0.7, 0.7, 0.7, 1)),
                                physicsClientId=cid)
        bodies.append(body)
    w, d, h = extent
    centre = np.array([0.0, 0.0, h / 2])
    radius = 0.5 * float(np.linalg.norm([w, d, h]))
    fov = 30.0
    dist = radius / np.sin(np.radians(fov / 2)) / 0.9
    big = size * supersample
    proj = p.computeProjectionMatrixFOV(fov, 1.0, dist * 0.1, dist * 3)
    out = np.zeros((len(directions), size, size, 4), np.uint8)
    for i, direction in enumerate(directions):
        eye = centre + dist * np.asarray(direction)
        up = [0, 0, 1] if abs(direction[2]) < 0.97 else [1, 0, 0]
        view = p.computeViewMatrix(eye.tolist(), centre.tolist(), up)
        light = (np.asarray(direction) + rng.normal(0, 0.6, 3)) * 5
        _, _, rgba, _, seg = p.getCameraImage(
            big, big, view, proj, renderer=p.ER_TINY_RENDERER, lightDirection=light.tolist(),
            lightAmbientCoeff=float(rng.uniform(0.4, 0.7)),
            lightDiffuseCoeff=float(rng.uniform(0.3, 0.6)),
            lightSpecularCoeff=float(rng.uniform(0.0, 0.3)), shadow=0, physicsClientId=cid)
        rgba = np.asarray(rgba, np.uint8).reshape(big, big, 4).copy()
        rgba[:, :, 3] = np.where(np.isin(np.asarray(seg).reshape(big, big), bodies), 255, 0)
        out[i] = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)
    for body in bodies:
        p.removeBody(body, physicsClientId=cid)
    return out


def product_cache(spec: ProductSpec, n_views: int, n_instances: int, view_size: int,
                  instance_size: int, data_dir: str | os.PathLike = "data") -> dict:
    """Reference views and scene instances of a product, rendered once and cached (npz).

    Views look from elevations 0-45 degrees at azimuths spread around the object (what a user
    photographs); instances come from other directions, each at least 15 degrees from every view.
    """
    path = Path(data_dir) / "products" / spec.split / f"{spec.product_id:04d}" / \
        f"renders_{n_views}x{view_size}_{n_instances}x{instance_size}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    rng = _rng("render", spec.split, spec.product_id)
    return cache_renders(path, rng, lambda dirs, size, r, ss: render(spec, dirs, size, r, data_dir, ss),
                         n_views, n_instances, view_size, instance_size)


def cache_renders(path: Path, rng: np.random.Generator, render_fn, n_views: int, n_instances: int,
                  view_size: int, instance_size: int) -> dict:
    """Render views + instances with render_fn(directions, size, rng, supersample) and save them as
    an npz at `path` (atomically); see `product_cache` for the directions."""
    az = (np.arange(n_views) + rng.uniform(-0.3, 0.3, n_views)) * 2 * np.pi / n_views
    el = np.radians(rng.uniform(0, 45, n_views))
    view_dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    inst_dirs = []
    while len(inst_dirs) < n_instances:
        cand = random_directions(64, rng, -20, 75)
        ok = (cand @ view_dirs.T).max(axis=1) < np.cos(np.radians(15))
        inst_dirs += list(cand[ok])
    inst_dirs = np.asarray(inst_dirs[:n_instances])
    arrays = {
        "views": render_fn(view_dirs, view_size, rng, 2),
        "view_dirs": view_dirs.astype(np.float32),
        # instances are always shrunk into scenes (area-averaged): no supersampling needed
        "instances": render_fn(inst_dirs, instance_size, rng, 1),
        "instance_dirs": inst_dirs.astype(np.float32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # unique: parallel renderers may race
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return arrays
