"""Sweet Home 3D furniture (Debian `sweethome3d-furniture`) as textured training objects.

The package holds five furniture libraries (`.sh3f`: zip files with a Java properties catalog and
OBJ+MTL models with their textures); CC-BY-3.0 (Scopia, KatorLegaz, Reallusion, BlendSwap-CC-BY)
or CC0 (BlendSwap-CC-0), see each library's LICENSE.TXT. Modelled, not scanned.

    index = catalog("data")                    # every model: id, name, category, size, split ...
    entry = index["models"][key]
    prepare_model(entry, "data")               # split OBJ per material, Z-up, catalog size
    renders = model_renders(key, "data")       # views + instances (rendered once, in a subprocess)

- Index: the catalog's width/depth/height (cm) give the model's size; doors, windows and
  staircases are left out; `textured` says whether a material has an image texture (the file
  exists). Split train/val/test by `sources.stable_split` of the catalog id; the family (same-kind
  siblings kept together in an episode) is the catalog name without digits ("Chair", "Bed").
- Meshes: TinyRenderer draws one material per mesh, so each OBJ is split by material (materials
  with the same texture and colour merged) into part OBJs, faces fan-triangulated, with flat
  normals; Sweet Home 3D's Y-up turned Z-up (after its `modelRotation`), scaled to the catalog
  size and standing on z = 0. Textures are re-encoded as PNG, at most 512 px.
- Rendering: products.render_meshes (the products' own code path), through products.cache_renders
  (the same view/instance directions). Loading some models crashes pybullet (about 1 in 40), so
  each model renders in its own subprocess; a crash or timeout leaves `failed.json` beside where
  the npz would be, so it costs one model once, never the run.

Cache: data/cache/sweethome3d (the unpacked .deb), sweethome3d_index.json, sweethome3d_models/<key>
(part OBJs + PNGs, removed once rendered), sweethome3d_renders/<key>/renders_*.npz (no pickle). All idempotent.

    python -m training.data.sweethome --split train --limit 100    # render (resumable)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from training.data import sources

log = logging.getLogger(__name__)

PACKAGE = "sweethome3d-furniture"
FURNITURE = "usr/share/sweethome3d/furniture"
SKIP_CATEGORIES = ("Doors and windows", "Staircases")
MAX_TEXTURE = 512
MAX_MEMBER = 64 << 20
RENDER_TIMEOUT = 300  # seconds per model subprocess
LICENCES = {"BlendSwap-CC-0": "CC0-1.0"}  # the others: CC-BY-3.0


# ----------------------------------------------------------------------------- catalog

def _properties(text: str) -> dict[str, str]:
    """A Java .properties file (continuation lines, \\uXXXX escapes) as a dict."""
    out, pending = {}, ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        key, sep, value = line.partition("=")
        if sep:
            value = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), value)
            out[key.strip()] = value.strip().replace("\\:", ":").replace("\\=", "=")
    return out


def _key(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model_id).strip("-").lower()


def family_name(name: str) -> str:
    """The head noun of a catalog name: 'Deck chair 2', 'Chair with cushion' -> 'chair'."""
    words = re.sub(r"[^a-z ]+", " ", name.lower()).split()
    if "with" in words[1:]:
        words = words[:words.index("with", 1)]
    return words[-1] if words else "misc"


def _furniture_dir(data_dir) -> Path | None:
    root = sources.fetch_debian(PACKAGE, sources.cache_dir(data_dir), "sweethome3d")
    return None if root is None else root / FURNITURE


def _parse_mtl(text: str) -> dict[str, dict]:
    mats, cur = {}, None
    for line in text.splitlines():
        parts = line.strip().split()
        if not parts:
            continue
        if parts[0] == "newmtl":
            cur = mats.setdefault(" ".join(parts[1:]), {"Kd": (0.7, 0.7, 0.7), "d": 1.0})
        elif cur is None:
            continue
        elif parts[0] == "Kd" and len(parts) >= 4:
            cur["Kd"] = tuple(float(x) for x in parts[1:4])
        elif parts[0] == "d" and len(parts) >= 2:
            cur["d"] = float(parts[1])
        elif parts[0] == "Tr" and len(parts) >= 2:
            cur["d"] = 1.0 - float(parts[1])
        elif parts[0] == "map_Kd" and len(parts) >= 2:
            cur["map_Kd"] = parts[-1]
    return mats


def _member(folder: str, name: str) -> str:
    """The zip member name of a file referenced from a model folder (normalised, no '..')."""
    parts = []
    for part in PurePosixPath(folder, name.replace("\\", "/")).parts:
        if part == "..":
            parts = parts[:-1]
        elif part not in (".", "/"):
            parts.append(part)
    return "/".join(parts)


def catalog(data_dir: str | os.PathLike = "data") -> dict:
    """{'models': {key: entry}, 'libraries': {name: licence}} of every usable model; cached json.
    Empty (not cached) when the package cannot be fetched."""
    cache = sources.cache_dir(data_dir)
    path = cache / "sweethome3d_index.json"
    if path.is_file():
        return json.loads(path.read_text())
    furniture = _furniture_dir(data_dir)
    if furniture is None:
        return {"models": {}, "libraries": {}}
    models, libraries = {}, {}
    for lib in sorted(furniture.glob("*.sh3f")):
        with zipfile.ZipFile(lib) as zf:
            names = set(zf.namelist())
            props = _properties(zf.read("PluginFurnitureCatalog.properties").decode("latin-1"))
            libraries[lib.stem] = LICENCES.get(lib.stem, "CC-BY-3.0")
            for k, v in props.items():
                if not k.startswith("id#"):
                    continue
                n = k[3:]
                get = lambda f: props.get(f"{f}#{n}", "")  # noqa: E731,B023
                model = get("model").lstrip("/")
                if get("category") in SKIP_CATEGORIES or get("doorOrWindow") == "true" or \
                        model not in names:
                    continue
                folder = str(PurePosixPath(model).parent)
                textured = False
                mtl_text = ""
                for m in (x for x in names if x.startswith(folder + "/") and x.endswith(".mtl")):
                    mtl_text += zf.read(m).decode("latin-1") + "\n"
                for mat in _parse_mtl(mtl_text).values():
                    if "map_Kd" in mat and _member(folder, mat["map_Kd"]) in names:
                        textured = True
                try:
                    size = [float(get("width")), float(get("depth")), float(get("height"))]
                except ValueError:
                    continue
                if min(size) <= 0:
                    continue
                rot = get("modelRotation")
                models[_key(v)] = {
                    "id": v, "library": lib.name, "name": get("name"), "category": get("category"),
                    "family": family_name(get("name")), "model": model, "size_cm": size,
                    "rotation": [float(x) for x in rot.split()] if rot else None,
                    "textured": textured, "creator": get("creator"),
                    "licence": libraries[lib.stem], "split": sources.stable_split(v)}
    index = {"models": models, "libraries": libraries}
    path.write_text(json.dumps(index, indent=0))
    log.info("sweethome3d: %d models, %d textured", len(models),
             sum(m["textured"] for m in models.values()))
    return index


def model_keys(split: str, data_dir: str | os.PathLike = "data", textured_only: bool = True
               ) -> list[str]:
    models = catalog(data_dir)["models"]
    return sorted(k for k, m in models.items() if m["split"] == split
                  and (m["textured"] or not textured_only))


# ----------------------------------------------------------------------------- meshes

def split_obj(obj_text: str, materials: dict[str, dict], read_texture, out: Path, size_m,
              rotation=None, max_texture: int = MAX_TEXTURE) -> list[dict]:
    """Write one OBJ per material (same texture + colour merged) into `out`; the parts as
    [{'obj', 'texture' (file name or None), 'rgba'}] (also saved as out/parts.json).

    read_texture(name) -> bytes or None (a file referenced by map_Kd). Vertices: rotation (3x3,
    row-major, applied first), then Y-up -> Z-up, then scaled per axis so the bounding box is
    size_m (x, y, z metres), centred on the z axis, standing on z = 0."""
    out.mkdir(parents=True, exist_ok=True)
    verts, uvs = [], []
    groups: dict[str, list] = {}
    cur = groups.setdefault("", [])
    for line in obj_text.splitlines():
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        if tag == "v" and len(parts) >= 4:
            verts.append([float(x) for x in parts[1:4]])
        elif tag == "vt" and len(parts) >= 3:
            uvs.append([float(parts[1]), float(parts[2])])
        elif tag == "usemtl":
            cur = groups.setdefault(" ".join(parts[1:]), [])
        elif tag == "f" and len(parts) >= 4:
            corners = []
            for c in parts[1:]:
                ids = c.split("/")
                vi = int(ids[0])
                vi = vi - 1 if vi > 0 else len(verts) + vi
                ti = None
                if len(ids) > 1 and ids[1]:
                    ti = int(ids[1])
                    ti = ti - 1 if ti > 0 else len(uvs) + ti
                corners.append((vi, ti))
            for k in range(1, len(corners) - 1):  # fan triangulation
                cur.append((corners[0], corners[k], corners[k + 1]))
    if not verts:
        raise ValueError("OBJ without vertices")
    v = np.asarray(verts, np.float64)
    if rotation is not None:
        v = v @ np.asarray(rotation, np.float64).reshape(3, 3).T
    v = np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)  # Y-up -> Z-up
    used = sorted({c[0] for tris in groups.values() for t in tris for c in t})
    lo, hi = v[used].min(axis=0), v[used].max(axis=0)
    scale = np.asarray(size_m, np.float64) / np.maximum(hi - lo, 1e-9)
    v = (v - np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])) * scale
    merged: dict[tuple, list] = {}
    kd_of: dict[tuple, tuple] = {}
    for name, tris in groups.items():
        if not tris:
            continue
        mat = materials.get(name, {"Kd": (0.7, 0.7, 0.7), "d": 1.0})
        tex = mat.get("map_Kd")
        if tex is not None and not any(c[1] is not None for t in tris for c in t):
            tex = None  # a texture without UVs cannot be mapped
        kd = tuple(round(float(x), 3) for x in mat["Kd"])
        key = (tex, kd if tex is None else None, mat["d"] < 0.5)
        merged.setdefault(key, []).extend(tris)
        kd_of.setdefault(key, kd)  # the colour if the texture turns out unreadable
    if any(not glass for (_, _, glass) in merged):  # see-through parts: only if nothing else
        merged = {k: t for k, t in merged.items() if not k[2]}
    parts, textures = [], {}
    for i, (key, tris) in enumerate(sorted(merged.items(), key=lambda kv: str(kv[0]))):
        tex, kd = key[0], kd_of[key]
        tex_file = None
        if tex is not None:
            if tex not in textures:
                textures[tex] = _write_texture(read_texture(tex), out / f"tex_{len(textures):02d}.png",
                                               max_texture)
            tex_file = textures[tex]
        vmap: dict[int, int] = {}
        tmap: dict = {}
        vlines, tlines, nlines, flines = [], [], [], []
        for j, (a, b, c) in enumerate(tris):
            pa, pb, pc = v[a[0]], v[b[0]], v[c[0]]
            n = np.cross(pb - pa, pc - pa)
            n = n / (np.linalg.norm(n) or 1.0)
            nlines.append(f"vn {n[0]:.4f} {n[1]:.4f} {n[2]:.4f}")
            corner = []
            for (vi, ti) in (a, b, c):
                if vi not in vmap:
                    vmap[vi] = len(vmap) + 1
                    vlines.append("v {:.5f} {:.5f} {:.5f}".format(*v[vi]))
                ti = ti if (tex_file and ti is not None and ti < len(uvs)) else None
                if ti not in tmap:
                    tmap[ti] = len(tmap) + 1
                    tlines.append("vt {:.5f} {:.5f}".format(*(uvs[ti] if ti is not None else (0, 0))))
                corner.append(f"{vmap[vi]}/{tmap[ti]}/{j + 1}")
            flines.append("f " + " ".join(corner))
        lines = vlines + tlines + nlines + flines
        name = f"part_{i:02d}.obj"
        (out / name).write_text("\n".join(lines) + "\n")
        colour = None if tex_file else [*map(float, kd), 1.0]
        parts.append({"obj": name, "texture": tex_file, "rgba": colour, "triangles": len(tris)})
    (out / "parts.json").write_text(json.dumps(parts, indent=0))
    return parts


def _write_texture(data: bytes | None, path: Path, max_side: int) -> str | None:
    if not data:
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), img)
    return path.name


def models_dir(data_dir) -> Path:
    return sources.cache_dir(data_dir) / "sweethome3d_models"


def prepare_model(key: str, entry: dict, data_dir: str | os.PathLike = "data") -> Path:
    """The folder with the model's part OBJs, textures and parts.json (made once)."""
    out = models_dir(data_dir) / key
    if (out / "parts.json").is_file():
        return out
    lib = _furniture_dir(data_dir) / entry["library"]
    folder = str(PurePosixPath(entry["model"]).parent)
    with zipfile.ZipFile(lib) as zf:
        names = set(zf.namelist())

        def read(name):
            member = _member(folder, name)
            if member not in names or zf.getinfo(member).file_size > MAX_MEMBER:
                return None
            return zf.read(member)

        obj_text = zf.read(entry["model"]).decode("latin-1")
        mtl_text = "\n".join(zf.read(m).decode("latin-1") for m in sorted(names)
                             if m.startswith(folder + "/") and m.endswith(".mtl"))
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        split_obj(obj_text, _parse_mtl(mtl_text), read, tmp,
                  [s / 100.0 for s in entry["size_cm"]], entry.get("rotation"))
    if out.exists():  # another process finished first
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    tmp.replace(out)
    return out


def render_parts(folder: Path, size_m, directions, size, rng, supersample=2) -> np.ndarray:
    """products.render_meshes of a prepared model folder."""
    from training.data import products
    parts = json.loads((folder / "parts.json").read_text())
    meshes = [(folder / p["obj"], folder / p["texture"] if p["texture"] else None, p["rgba"])
              for p in parts]
    return products.render_meshes(meshes, size_m, directions, size, rng, supersample)


# ----------------------------------------------------------------------------- renders

RENDER = dict(n_views=12, n_instances=6, view_size=128, instance_size=224)


def renders_path(key: str, data_dir, n_views, n_instances, view_size, instance_size) -> Path:
    return sources.cache_dir(data_dir) / "sweethome3d_renders" / key / \
        f"renders_{n_views}x{view_size}_{n_instances}x{instance_size}.npz"


def render_in_process(key: str, data_dir: str | os.PathLike = "data", keep_meshes: bool = False,
                      **render) -> dict:
    """Prepare and render one model here (the subprocess's work); the arrays saved as npz."""
    from training.data import products
    render = render or RENDER
    entry = catalog(data_dir)["models"][key]
    folder = prepare_model(key, entry, data_dir)
    path = renders_path(key, data_dir, **render)
    size_m = [s / 100.0 for s in entry["size_cm"]]
    rng = products._rng("render", "sweethome3d", entry["id"])
    arrays = products.cache_renders(
        path, rng, lambda d, s, r, ss: render_parts(folder, size_m, d, s, r, ss), **render)
    if not keep_meshes:  # the renders are the cache; the part meshes come back in a second
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    return arrays


def model_renders(key: str, data_dir: str | os.PathLike = "data", timeout: float = RENDER_TIMEOUT,
                  **render) -> dict | None:
    """Views + instances of a model: from the cache, else rendered in a subprocess (a crash or a
    timeout is recorded as failed.json and gives None, now and on every later call)."""
    render = render or RENDER
    return cached_or_subprocess("training.data.sweethome", key,
                                renders_path(key, data_dir, **render), data_dir, render, timeout)


def cached_or_subprocess(module: str, key: str, path: Path, data_dir, render: dict,
                         timeout: float = RENDER_TIMEOUT) -> dict | None:
    """The npz at `path`, else `python -m <module> --one <key>` made it (None, and failed.json
    beside it, when that crashed, failed or timed out; a failed key is never retried)."""
    failed = path.parent / "failed.json"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if failed.is_file():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", module, "--one", key,
           "--data-dir", str(Path(data_dir).resolve()), "--render", json.dumps(render)]
    t0 = time.time()
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, text=True,
                             cwd=Path(__file__).resolve().parents[2],
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        rc, err = res.returncode, res.stderr[-2000:]
    except subprocess.TimeoutExpired:
        rc, err = "timeout", f"over {timeout} s"
    if rc == 0 and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    failed.write_text(json.dumps({"returncode": rc, "seconds": round(time.time() - t0, 1),
                                  "stderr": err}, indent=1))
    log.warning("%s %s: render failed (%s)", module, key, rc)
    return None


def rendered_keys(split: str, data_dir: str | os.PathLike = "data", **render) -> list[str]:
    """Models of a split whose renders are cached (episode generation never renders)."""
    render = render or RENDER
    return [k for k in model_keys(split, data_dir) if renders_path(k, data_dir, **render).is_file()]


def main(argv=None):
    ap = argparse.ArgumentParser(description="Render Sweet Home 3D models (resumable).")
    ap.add_argument("--split", default="train", choices=["train", "val", "test"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: render one model, here
    ap.add_argument("--render", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        render_in_process(args.one, args.data_dir, **(json.loads(args.render) if args.render else {}))
        return
    keys = model_keys(args.split, args.data_dir)[:args.limit]
    t0, ok, bad = time.time(), 0, 0
    for i, key in enumerate(keys):
        if model_renders(key, args.data_dir) is None:
            bad += 1
        else:
            ok += 1
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{len(keys)}: {ok} ok, {bad} failed, {time.time() - t0:.0f} s", flush=True)
    print(f"{args.split}: {ok} rendered, {bad} failed of {len(keys)} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
