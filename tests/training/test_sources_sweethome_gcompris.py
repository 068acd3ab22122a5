"""New object sources, offline: the Qt .rcc reader (GCompris), the Sweet Home 3D OBJ splitter and
renderer, and training episodes that use them. Every fixture is hand-made in tmp_path."""
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from training.data import rcc  # noqa: E402

# ----------------------------------------------------------------------------- rcc


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("compress", [True, False])
def test_rcc_round_trip(version, compress):
    files = {"gcompris/a/hammer1.webp": b"\x00\x01hammer" * 50,
             "gcompris/a/README": b"License: CC0", "top.txt": b"x"}
    blob = rcc.build_rcc(files, compress=compress, version=version)
    problems = []
    got = dict(rcc.read_rcc(blob, problems=problems))
    assert got == files and problems == []
    assert dict(rcc.read_rcc(blob, keep=lambda p: p.endswith(".webp"))) == \
        {"gcompris/a/hammer1.webp": files["gcompris/a/hammer1.webp"]}


def _node(blob, index, version=2):
    tree = struct.unpack_from(">I", blob, 8)[0]
    return tree + index * (14 if version == 1 else 22)


def test_rcc_refuses_bad_offsets_and_sizes():
    blob = bytearray(rcc.build_rcc({"a.bin": b"a" * 100, "b.bin": b"b" * 100}))
    # node 1 = a.bin: point its data offset past the end of the file
    struct.pack_into(">I", blob, _node(blob, 1) + 10, 10 ** 6)
    problems = []
    got = dict(rcc.read_rcc(bytes(blob), problems=problems))
    assert got == {"b.bin": b"b" * 100} and len(problems) == 1 and "outside" in problems[0]
    # a name offset past the end
    blob2 = bytearray(rcc.build_rcc({"a.bin": b"a"}))
    struct.pack_into(">I", blob2, _node(blob2, 1), 10 ** 6)
    problems = []
    assert rcc.read_rcc(bytes(blob2), problems=problems) == [] and problems
    # a zip bomb: 4 MB of zeros, cap 64 KB -> refused, decompression stops at the cap
    bomb = rcc.build_rcc({"bomb.bin": bytes(4 << 20), "ok.bin": b"ok"})
    problems = []
    assert dict(rcc.read_rcc(bomb, max_entry=64 << 10, problems=problems)) == {"ok.bin": b"ok"}
    assert "cap" in problems[0]
    # the declared size lies (says small, inflates big)
    blob3 = bytearray(rcc.build_rcc({"x.bin": bytes(200_000)}))
    data = struct.unpack_from(">I", blob3, 12)[0]
    struct.pack_into(">I", blob3, data + 4, 10)  # qCompress's length prefix
    problems = []
    assert rcc.read_rcc(bytes(blob3), max_entry=100_000, problems=problems) == [] and problems
    # a total cap
    problems = []
    assert len(rcc.read_rcc(rcc.build_rcc({"a": b"a" * 600, "b": b"b" * 600}), max_total=1000,
                            problems=problems)) == 1 and problems
    # not an rcc at all
    with pytest.raises(rcc.RccError):
        rcc.read_rcc(b"PK\x03\x04" + bytes(40))
    with pytest.raises(rcc.RccError):
        rcc.read_rcc(b"qres")  # truncated header


def test_rcc_refuses_hostile_paths_and_cycles(tmp_path):
    blob = bytearray(rcc.build_rcc({"ok/fine.txt": b"fine", "../evil.txt": b"evil",
                                    "ok/x.txt": b"x"}))
    problems = []
    got = dict(rcc.read_rcc(bytes(blob), problems=problems))
    assert got == {"ok/fine.txt": b"fine", "ok/x.txt": b"x"}
    assert any("unsafe" in p for p in problems)
    # a directory whose children include the root itself: visited once, no endless loop
    root = _node(blob, 0)
    struct.pack_into(">II", blob, root + 6, 3, 0)  # root: 3 children starting at node 0
    problems = []
    rcc.read_rcc(bytes(blob), problems=problems)
    assert any("repeated" in p for p in problems)
    for bad in ("../x", "/etc/passwd", "a/../../x", "", "a//b"):
        assert rcc.safe_destination(tmp_path, bad) is None
    assert rcc.safe_destination(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    # extraction writes only inside the folder
    src = tmp_path / "t.rcc"
    src.write_bytes(rcc.build_rcc({"ok/fine.txt": b"fine", "../evil.txt": b"evil"}))
    out = tmp_path / "out"
    written = rcc.extract_rcc(src, out)
    assert written == [(out / "ok" / "fine.txt").resolve()]
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(rcc.RccError):
        rcc.extract_rcc(src, out, max_file=10)


# ----------------------------------------------------------------------------- Sweet Home 3D

# A 1 x 2 x 1 box (x, y = up, z) whose upper half is material 'top' (a green PNG texture) and
# lower half material 'bottom' (plain blue), Sweet Home 3D style (Y up).
OBJ = """mtllib box.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0 0 1
v 1 0 1
v 1 1 1
v 0 1 1
v 0 2 0
v 1 2 0
v 0 2 1
v 1 2 1
vt 0 0
vt 1 0
vt 1 1
vt 0 1
usemtl bottom
f 1 2 3 4
f 5 8 7 6
f 1 5 6 2
f 2 6 7 3
f 4 3 7 8
f 1 4 8 5
usemtl top
f 4/1 3/2 10/3 9/4
f 8/1 11/4 12/3 7/2
f 3/1 7/2 12/3 10/4
f 4/1 9/2 11/3 8/4
f 9/1 10/2 12/3 11/4
"""
MTL = """newmtl bottom
Kd 0.1 0.2 0.9
newmtl top
Kd 1 1 1
map_Kd green.png
"""


def _green_png() -> bytes:
    img = np.zeros((16, 16, 3), np.uint8)
    img[:] = (30, 200, 40)  # BGR: green
    return cv2.imencode(".png", img)[1].tobytes()


def test_split_obj_per_material_z_up(tmp_path):
    from training.data import sweethome

    parts = sweethome.split_obj(OBJ, sweethome._parse_mtl(MTL),
                                lambda name: _green_png() if name == "green.png" else None,
                                tmp_path, (0.2, 0.3, 0.4))
    assert len(parts) == 2
    tex = [p for p in parts if p["texture"]]
    plain = [p for p in parts if not p["texture"]]
    assert len(tex) == 1 and len(plain) == 1
    assert plain[0]["rgba"] == [0.1, 0.2, 0.9, 1.0]
    assert (tmp_path / tex[0]["texture"]).is_file()
    assert tex[0]["triangles"] == 10 and plain[0]["triangles"] == 12

    def verts(part):
        lines = (tmp_path / part["obj"]).read_text().splitlines()
        return np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("v ")])

    top, bottom = verts(tex[0]), verts(plain[0])
    both = np.concatenate([top, bottom])
    np.testing.assert_allclose(both.min(0), [-0.1, -0.15, 0.0], atol=1e-4)
    np.testing.assert_allclose(both.max(0), [0.1, 0.15, 0.4], atol=1e-4)
    assert top[:, 2].min() >= 0.2 - 1e-4 and bottom[:, 2].max() <= 0.2 + 1e-4  # Y-up -> Z-up


def _fake_furniture(data_dir, ids=("Test#box1", "Test#box2"), broken=()):
    """A tiny .sh3f library in the Debian package's place (marked fetched: no apt)."""
    root = data_dir / "cache" / "sweethome3d"
    lib = root / "usr/share/sweethome3d/furniture"
    lib.mkdir(parents=True)
    (root / ".done").touch()
    props = ["id=Test", "name=Test catalog"]
    with zipfile.ZipFile(lib / "Test.sh3f", "w") as zf:
        for n, model_id in enumerate(ids, 1):
            folder = f"test/m{n}"
            obj = OBJ if model_id not in broken else "v 0 0 0\nf 1 2 3\n"
            zf.writestr(f"{folder}/box.obj", obj)
            zf.writestr(f"{folder}/box.mtl", MTL)
            zf.writestr(f"{folder}/green.png", _green_png())
            props += [f"id#{n}={model_id}", f"name#{n}=Box {n}", f"category#{n}=Kitchen",
                      f"model#{n}=/{folder}/box.obj", f"width#{n}=20", f"depth#{n}=30",
                      f"height#{n}=40", f"doorOrWindow#{n}=false"]
        n = len(ids) + 1  # a door: left out of the index
        props += [f"id#{n}=Test#door", f"name#{n}=Door", f"category#{n}=Doors and windows",
                  f"model#{n}=/test/m1/box.obj", f"width#{n}=1", f"depth#{n}=1", f"height#{n}=1",
                  f"doorOrWindow#{n}=true"]
        zf.writestr("PluginFurnitureCatalog.properties", "\n".join(props) + "\n")


def test_sweethome_render_shows_both_materials(tmp_path):
    pytest.importorskip("pybullet")
    from training.data import sweethome

    _fake_furniture(tmp_path)
    models = sweethome.catalog(tmp_path)["models"]
    assert sorted(models) == ["test-box1", "test-box2"]  # the door is left out
    assert all(m["textured"] and m["family"] == "box" for m in models.values())
    key = "test-box1"
    render = dict(n_views=4, n_instances=2, view_size=64, instance_size=64)
    r = sweethome.model_renders(key, tmp_path, **render)  # in a subprocess
    assert r["views"].shape == (4, 64, 64, 4) and r["instances"].shape == (2, 64, 64, 4)
    again = sweethome.model_renders(key, tmp_path, **render)  # from the cache
    assert np.array_equal(again["views"], r["views"])
    for img in np.concatenate([r["views"], r["instances"]]):
        alpha = img[:, :, 3] >= 128
        assert 0.05 < alpha.mean() < 0.9
        ys, xs = np.nonzero(alpha)
        assert abs(xs.mean() - 32) < 12 and abs(ys.mean() - 32) < 12  # centred
        rgb = img[:, :, :3][alpha].astype(int)
        green = ((rgb[:, 1] > rgb[:, 0] + 30) & (rgb[:, 1] > rgb[:, 2] + 30)).mean()
        blue = ((rgb[:, 2] > rgb[:, 0] + 30) & (rgb[:, 2] > rgb[:, 1] + 10)).mean()
        assert green > 0.05 and blue > 0.05, (green, blue)  # the texture and the colour


def test_sweethome_failed_model_costs_one_model(tmp_path):
    pytest.importorskip("pybullet")
    from training.data import sweethome

    _fake_furniture(tmp_path, broken=("Test#box2",))
    render = dict(n_views=2, n_instances=1, view_size=32, instance_size=32)
    assert sweethome.model_renders("test-box2", tmp_path, **render) is None
    failed = sweethome.renders_path("test-box2", tmp_path, **render).parent / "failed.json"
    assert json.loads(failed.read_text())["returncode"] != 0
    def no_subprocess(*a, **k):
        raise AssertionError("a failed model is not rendered again")

    mp = pytest.MonkeyPatch()
    mp.setattr(sweethome.subprocess, "run", no_subprocess)
    try:
        assert sweethome.model_renders("test-box2", tmp_path, **render) is None  # not retried
    finally:
        mp.undo()
    assert sweethome.model_renders("test-box1", tmp_path, **render) is not None


# ----------------------------------------------------------------------------- GCompris

CAT = "gcompris/src/activities/categorization/resource/images/"


def _photo(colour, seed):
    rng = np.random.default_rng(seed)
    img = np.full((120, 160, 3), 235, np.uint8)
    cv2.ellipse(img, (80, 60), (int(rng.integers(30, 50)), 30), float(rng.uniform(0, 90)), 0, 360,
                colour, -1)
    return cv2.imencode(".webp", img)[1].tobytes()


def _fake_gcompris(data_dir):
    root = data_dir / "cache" / "gcompris"
    rccs = root / "usr/share/gcompris-qt/rcc"
    rccs.mkdir(parents=True)
    (root / ".done").touch()
    files = {CAT + "tools/README": b"Copyright: A\nLicense: CC0-1.0\nFiles:\nhammer1.webp\n"
                                    b"hammer2.webp\n\nCopyright: B\nLicense: Public Domain\n"
                                    b"Files: wrench.webp\n"}
    for i in range(12):
        files[CAT + f"tools/hammer{i + 1}.webp"] = _photo((20, 20 + 15 * i, 200), i)
        files[CAT + f"tools/wrench{i + 1}.webp"] = _photo((200, 60, 20 + 15 * i), 100 + i)
    for i in range(12):
        big = np.random.default_rng(i).integers(0, 255, (200, 300, 3), dtype=np.uint8)
        files[CAT + f"monuments/m{i}.webp"] = cv2.imencode(".webp", big)[1].tobytes()
    files["gcompris/src/activities/categorization/Other.qml"] = b"not wanted"
    (rccs / "categorization.rcc").write_bytes(rcc.build_rcc(files))


def test_gcompris_objects_and_backgrounds(tmp_path):
    from training.data import gcompris

    _fake_gcompris(tmp_path)
    idx = gcompris.index(tmp_path)
    assert len(idx["objects"]) == 24 and len(idx["backgrounds"]) == 12
    assert not list((tmp_path / "cache" / "gcompris_images").rglob("*.qml"))
    assert idx["objects"]["tools/hammer2"]["licence"] == "CC0-1.0"
    assert idx["objects"]["tools/hammer2"]["family"] == "hammer"
    objs = gcompris.objects(str(tmp_path))
    assert len(objs) >= 20
    photo, cut = objs["tools/hammer3"]
    assert photo.shape[2] == 3 and cut.shape[2] == 4
    frac = (cut[:, :, 3] >= 128).mean()
    assert 0.1 < frac < 0.6  # the ellipse, not the white surround
    n = sum(len(gcompris.backgrounds(s, str(tmp_path))) for s in ("train", "val", "test"))
    assert n == 12


# ----------------------------------------------------------------------------- robosuite

def _fake_robosuite(data_dir):
    """A wheel holding robosuite's 'can' (the box fixture, Z-up) and its soda texture."""
    cache = data_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / "robosuite-1.5.2-py3-none-any.whl", "w") as zf:
        zf.writestr("robosuite/models/assets/objects/meshes/can.obj", OBJ)
        zf.writestr("robosuite/models/assets/objects/meshes/can.mtl",
                    MTL.replace("green.png", "../../textures/soda.png"))
        zf.writestr("robosuite/models/assets/textures/soda.png", _green_png())


def test_robosuite_object_renders(tmp_path):
    pytest.importorskip("pybullet")
    from training.data import robosuite_objects

    _fake_robosuite(tmp_path)
    assert robosuite_objects.split_of("can") == "train"
    folder = robosuite_objects.prepare("can", tmp_path)  # robosuite is Z-up: no turn, own size
    v = np.concatenate([robosuite_objects._vertices(folder / p["obj"])
                        for p in json.loads((folder / "parts.json").read_text())])
    np.testing.assert_allclose(v.max(0) - v.min(0), [1, 2, 1], atol=1e-4)
    textured = [p for p in json.loads((folder / "parts.json").read_text()) if p["texture"]]
    top = robosuite_objects._vertices(folder / textured[0]["obj"])
    assert top[:, 1].min() >= -1e-4 and np.ptp(top[:, 2]) > 0.99  # the y > 1 half, full height
    r = robosuite_objects.renders("can", tmp_path, n_views=3, n_instances=1, view_size=64,
                                  instance_size=64)
    v = r["views"]
    assert v.shape == (3, 64, 64, 4)
    for img in v:  # both materials: the texture (green) and the colour (blue)
        alpha = img[:, :, 3] >= 128
        rgb = img[:, :, :3].astype(int)
        green = alpha & (rgb[:, :, 1] > rgb[:, :, 0] + 30) & (rgb[:, :, 1] > rgb[:, :, 2] + 30)
        blue = alpha & (rgb[:, :, 2] > rgb[:, :, 0] + 30) & (rgb[:, :, 2] > rgb[:, :, 1] + 10)
        assert green.sum() > 20 and blue.sum() > 20


# ----------------------------------------------------------------------------- episodes

def test_episode_with_new_sources(tmp_path, photo_free):
    pytest.importorskip("pybullet")
    from training.data import realbench, sources, sweethome

    ids = [f"Test#box{i}" for i in range(40) if sources.stable_split(f"Test#box{i}") == "train"][:3]
    _fake_furniture(tmp_path, ids=ids)
    _fake_gcompris(tmp_path)
    _fake_robosuite(tmp_path)
    from training.data import robosuite_objects
    assert robosuite_objects.renders("can", tmp_path) is not None
    for key in sweethome.model_keys("train", tmp_path):
        assert sweethome.model_renders(key, tmp_path) is not None
    cfg = realbench.RealConfig(split="train", data_dir=str(tmp_path), families_per_episode=1,
                               stamps_per_episode=0, scenes_per_episode=3,
                               **realbench.parse_sources("sweethome:3,gcompris:2,outdoor:0.5,robosuite:1"))
    src = realbench.ObjectSource.for_config(cfg)
    assert len(src.sweethome) == 3 and src.gcompris and src.outdoor
    ep = realbench.make_episode(src, cfg, np.random.default_rng(4))
    names = list(ep["object_names"])
    c = len(names)
    assert c == 4 + 3 + 2 + 1
    assert sum(n.startswith("sh3d:") for n in names) == 3 and names[-1] == "rs:can"
    gc = [i for i, n in enumerate(names) if n.startswith("gc:")]
    assert len(gc) == 2 and len({src.family(names[i]) for i in gc}) == 1  # one family together
    assert ep["views_alpha"].shape == (c, 8, 128, 128, 4)
    assert ep["views_photo"].shape == (c, 8, 128, 128, 3)
    for i in range(c):  # every view shows its object
        assert ((ep["views_alpha"][i, :, :, :, 3] >= 128).mean(axis=(1, 2)) > 0.02).all()
    for i in gc:  # a photo view is the photo itself: its white surround, not a pasted background
        corners = ep["views_photo"][i][:, :8, :8].reshape(-1, 3).mean(0)
        assert corners.min() > 180
    assert (ep["present"] == (ep["visible_pixels"] >= 20)).all()
    pos = ep["targets"].reshape(3, c, -1).max(-1)
    assert (pos[ep["present"]] == 1).all() and (pos[~ep["present"]] == 0).all()
    b = ep["boxes"]
    assert np.isfinite(b[ep["present"]]).all()
    for s, ci in zip(*np.nonzero(ep["present"])):
        ys, xs = np.nonzero(ep["instances"][s] == ci)
        assert tuple(b[s, ci]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert ep["present"][:, 4:].any()  # some new-source object is in some scene


def test_default_benchmark_episode_unchanged():
    """The default config (every new source at 0) gives the stored val benchmark episode
    bit for bit (skipped where the benchmark has not been built)."""
    pytest.importorskip("pybullet")
    from pathlib import Path

    from training.data import realbench

    stored = Path("data/realbench/val/episode_0000.npz")
    if not stored.is_file():
        pytest.skip("no built val benchmark in data/realbench/val")
    cfg = realbench.RealConfig(split="val")
    ep = realbench.make_episode(realbench.ObjectSource.for_config(cfg), cfg,
                                np.random.default_rng([realbench.BENCH_SEED["val"], 0]))
    with np.load(stored, allow_pickle=False) as z:
        for k in z.files:
            assert np.array_equal(z[k], ep[k], equal_nan=z[k].dtype.kind == "f"), k


def test_parse_sources():
    from training.data import realbench

    assert realbench.parse_sources("") == {}
    assert realbench.parse_sources("sweethome:4, gcompris:2,outdoor:0.25") == {
        "sweethome_per_episode": 4, "gcompris_per_episode": 2, "gcompris_background_prob": 0.25}
    with pytest.raises(ValueError):
        realbench.parse_sources("objaverse:3")


def test_zlib_entry_is_qcompress_format():
    """A real GCompris entry starts with the uncompressed length (qCompress): the fixture agrees."""
    blob = rcc.build_rcc({"a": b"hello" * 10})
    data = struct.unpack_from(">I", blob, 12)[0]
    size, declared = struct.unpack_from(">II", blob, data)
    assert declared == 50 and zlib.decompress(blob[data + 8:data + 4 + size]) == b"hello" * 10
