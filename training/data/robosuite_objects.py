"""robosuite's textured household objects (PyPI `robosuite` 1.5.2 wheel, MIT) as training objects.

Six objects with product-photo textures: can (soda), cereal box, bread, lemon, milk carton
(ceramic) and bottle (glass: its texture is a skybox in MuJoCo, so it renders in its colour). The
wheel is fetched and its textures unpacked by training/data/photos.py (those textures are also
label/background photos there); the OBJ+MTL meshes are read from the wheel here, split per
material with sweethome.split_obj (robosuite is Z-up already: no Y-up turn) at their own size,
and rendered through products.render_meshes in a subprocess each (sweethome's crash guard).

Split: each object goes to the split its texture has in the photo pool (`sources.stable_split`
of the photo's name), so no texture is behind a training object and a benchmark label at once:
can, bread, milk train; cereal val; lemon, bottle test.

Cache: data/cache/robosuite_objects/<name>/ (meshes, removed once rendered) and
data/cache/robosuite_renders/<name>/renders_*.npz (no pickle).
"""
from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from training.data import sources, sweethome

# object -> (texture photo, scale from its MJCF file)
OBJECTS = {"can": ("soda", 1.0), "cereal": ("cereal", 1.0), "bread": ("bread", 1.0),
           "lemon": ("lemon", 1.0), "milk": ("ceramic", 0.9), "bottle": ("glass", 1.0)}
MESHES = "robosuite/models/assets/objects/meshes/"
TEXTURES = "robosuite/models/assets/textures/"
Z_UP = [1, 0, 0, 0, 0, 1, 0, -1, 0]  # undoes split_obj's Y-up -> Z-up turn
RENDER = sweethome.RENDER


def split_of(name: str) -> str:
    return sources.stable_split(f"robosuite/{TEXTURES}{OBJECTS[name][0]}.png")


def names(split: str) -> list[str]:
    return [n for n in OBJECTS if split_of(n) == split]


def _wheel(data_dir) -> tuple[Path, Path] | None:
    from training.data import photos
    cache = sources.cache_dir(data_dir)
    root = photos._fetch_wheel("robosuite", cache)
    wheels = sorted(cache.glob("robosuite-*.whl"))
    return (wheels[-1], root) if root is not None and wheels else None


def prepare(name: str, data_dir: str | os.PathLike = "data") -> Path:
    out = sources.cache_dir(data_dir) / "robosuite_objects" / name
    if (out / "parts.json").is_file():
        return out
    wheel, root = _wheel(data_dir)
    with zipfile.ZipFile(wheel) as zf:
        obj = zf.read(MESHES + f"{name}.obj").decode("latin-1")
        mtl = zf.read(MESHES + f"{name}.mtl").decode("latin-1")
    v = np.array([[float(x) for x in ln.split()[1:4]] for ln in obj.splitlines()
                  if ln.startswith("v ")])
    size = (v.max(0) - v.min(0)) * OBJECTS[name][1]

    def read_texture(ref: str):
        path = root / TEXTURES / Path(ref).name  # map_Kd is '../../textures/<file>'
        return path.read_bytes() if path.is_file() else None

    sweethome.split_obj(obj, sweethome._parse_mtl(mtl), read_texture, out, size.tolist(), Z_UP)
    return out


def renders_path(name: str, data_dir, n_views, n_instances, view_size, instance_size) -> Path:
    return sources.cache_dir(data_dir) / "robosuite_renders" / name / \
        f"renders_{n_views}x{view_size}_{n_instances}x{instance_size}.npz"


def render_in_process(name: str, data_dir: str | os.PathLike = "data", **render) -> dict:
    import shutil

    from training.data import products
    render = render or RENDER
    folder = prepare(name, data_dir)
    v = np.concatenate([_vertices(folder / p["obj"])
                        for p in json.loads((folder / "parts.json").read_text())])
    size = v.max(0) - v.min(0)
    rng = products._rng("render", "robosuite", name)
    arrays = products.cache_renders(
        renders_path(name, data_dir, **render), rng,
        lambda d, s, r, ss: sweethome.render_parts(folder, size.tolist(), d, s, r, ss), **render)
    shutil.rmtree(folder, ignore_errors=True)
    return arrays


def _vertices(obj: Path) -> np.ndarray:
    return np.array([[float(x) for x in ln.split()[1:4]] for ln in obj.read_text().splitlines()
                     if ln.startswith("v ")])


def renders(name: str, data_dir: str | os.PathLike = "data", **render) -> dict | None:
    """Views + instances of a robosuite object (cached; rendered once in a subprocess)."""
    render = render or RENDER
    return sweethome.cached_or_subprocess("training.data.robosuite_objects", name,
                                          renders_path(name, data_dir, **render), data_dir, render)


def rendered(split: str, data_dir: str | os.PathLike = "data", **render) -> list[str]:
    render = render or RENDER
    return [n for n in names(split) if renders_path(n, data_dir, **render).is_file()]


def main(argv=None):
    ap = argparse.ArgumentParser(description="Render robosuite's textured objects.")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--render", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        render_in_process(args.one, args.data_dir, **(json.loads(args.render) if args.render else {}))
        return
    for name in OBJECTS:
        r = renders(name, args.data_dir)
        print(name, split_of(name), "failed" if r is None else r["views"].shape)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
