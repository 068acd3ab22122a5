"""ObjectLibrary without ROS: persistence, atomic writes, corrupt entries, re-embedding."""
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from yolz_ros import library as library_module
from yolz_ros.library import LibraryError, ObjectLibrary, validate_name


def views(n, seed=0, channels=3, size=(24, 32)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, channels), dtype=np.uint8) for _ in range(n)]


def unit(seed, dim=8):
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def fake_embed(vs):
    """A deterministic embedder: mean pixel per channel, padded to 8 dims, normalised."""
    per_view = np.stack([np.resize(v[..., :3].reshape(-1, 3).mean(0), 8) + 1.0 for v in vs])
    per_view = (per_view / np.linalg.norm(per_view, axis=1, keepdims=True)).astype(np.float32)
    vec = per_view.mean(0)
    vec /= np.linalg.norm(vec)
    return SimpleNamespace(vector=vec.astype(np.float32), per_view=per_view,
                           agreement=(per_view @ vec).astype(np.float32))


def test_add_list_remove_reload(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    assert lib.names() == [] and lib.embeddings_matrix().embeddings.shape[0] == 0
    mug_views = views(3, seed=1, channels=4)
    lib.add("mug", mug_views, unit(1))
    lib.add("drill", views(2, seed=2), fake_embed(views(2, seed=2)))
    names, emb = lib.embeddings_matrix()
    assert names == ("mug", "drill") and emb.dtype == np.float32 and emb.shape == (2, 8)
    with pytest.raises(ValueError):
        emb[0, 0] = 1.0  # snapshot is immutable
    with pytest.raises(LibraryError, match="replace"):
        lib.add("mug", views(1), unit(3))
    lib.add("mug", views(1, seed=5), unit(5), replace=True)
    assert lib.num_views("mug") == 1
    # grid order kept on replace; the old folder is gone
    assert lib.names() == ["mug", "drill"]
    assert len([p for p in (tmp_path / "objects").iterdir()]) == 2

    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert again.names() == ["mug", "drill"]
    np.testing.assert_array_equal(again.embeddings_matrix().embeddings,
                                  lib.embeddings_matrix().embeddings)
    np.testing.assert_array_equal(again.views("mug")[0], views(1, seed=5)[0])
    assert again.entries() == [("mug", 1), ("drill", 2)]

    again.remove("mug")
    with pytest.raises(LibraryError, match="no object named"):
        again.remove("mug")
    third = ObjectLibrary(tmp_path, "m@1").load()
    assert third.names() == ["drill"]
    assert len(list((tmp_path / "objects").iterdir())) == 1
    index = json.loads((tmp_path / "library.json").read_text())
    assert [e["name"] for e in index["objects"]] == ["drill"]
    assert set(index["objects"][0]) >= {"name", "num_views", "model_id", "created"}


def test_views_round_trip_lossless_rgba(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    vs = views(2, seed=7, channels=4) + views(1, seed=8, channels=3)
    lib.add("thing", vs, unit(0))
    back = ObjectLibrary(tmp_path, "m@1").load().views("thing")
    for a, b in zip(vs, back):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["", "a b", "x/y", "..", "ü", "a" * 65, "mug\n"])
def test_bad_names(tmp_path, name):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    with pytest.raises(LibraryError, match="name"):
        lib.add(name, views(1), unit(0))


def test_good_names():
    for name in ["a", "red_mug", "Mug-2.v1", "a" * 64]:
        assert validate_name(name) == name


def test_crash_mid_write_keeps_old_state(tmp_path, monkeypatch):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), unit(1))
    before_index = (tmp_path / "library.json").read_bytes()

    # 1) crash while writing the object's folder (the embedding file)
    def failing_npz(path, **arrays):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(library_module, "_write_npz", failing_npz)
    with pytest.raises(OSError):
        lib.add("mug", views(3, seed=9), unit(9), replace=True)
    with pytest.raises(OSError):
        lib.add("drill", views(1), unit(2))
    monkeypatch.undo()
    assert lib.names() == ["mug"] and lib.num_views("mug") == 2
    assert (tmp_path / "library.json").read_bytes() == before_index

    # 2) crash while committing the index (the atomic replace fails: old index stays)
    real_replace = library_module.os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("library.json"):
            raise OSError("power cut (simulated)")
        return real_replace(src, dst)
    monkeypatch.setattr(library_module.os, "replace", failing_replace)
    with pytest.raises(OSError):
        lib.add("mug", views(3, seed=9), unit(9), replace=True)
    with pytest.raises(OSError):
        lib.remove("mug")
    monkeypatch.undo()
    assert (tmp_path / "library.json").read_bytes() == before_index
    # no temporaries left behind in the library directory
    assert not [p for p in tmp_path.rglob(".tmp-*")]

    reloaded = ObjectLibrary(tmp_path, "m@1").load()
    assert reloaded.names() == ["mug"] and reloaded.num_views("mug") == 2
    np.testing.assert_allclose(reloaded.embeddings_matrix().embeddings[0], unit(1))


def test_leftover_temporaries_and_orphans(tmp_path, caplog):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(1), unit(1))
    (tmp_path / "objects" / ".tmp-half.abc").mkdir()
    (tmp_path / "objects" / ".tmp-half.abc" / "view_000.png").write_bytes(b"partial")
    orphan = tmp_path / "objects" / "ghost.123"
    orphan.mkdir()
    with caplog.at_level(logging.INFO):
        again = ObjectLibrary(tmp_path, "m@1").load()
    assert again.names() == ["mug"]
    assert not (tmp_path / "objects" / ".tmp-half.abc").exists()
    assert orphan.exists() and "not in the index" in caplog.text


def test_corrupt_entries_are_skipped_not_deleted(tmp_path, caplog):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("good", views(1, seed=1), unit(1))
    lib.add("bad_npz", views(1, seed=2), unit(2))
    lib.add("bad_view", views(2, seed=3), unit(3))
    lib.add("bad_meta", views(1, seed=4), unit(4))
    index = json.loads((tmp_path / "library.json").read_text())
    folders = {e["name"]: tmp_path / "objects" / e["folder"] for e in index["objects"]}
    (folders["bad_npz"] / "embedding.npz").write_bytes(b"not a zip")
    (folders["bad_view"] / "view_001.png").unlink()
    (folders["bad_meta"] / "meta.json").write_text("{")
    index["objects"].append({"name": "no_folder", "folder": "missing.1"})
    index["objects"].append({"bogus": 1})
    (tmp_path / "library.json").write_text(json.dumps(index))

    with caplog.at_level(logging.WARNING):
        again = ObjectLibrary(tmp_path, "m@1").load()
    assert again.names() == ["good"]
    assert set(again.skipped) == {"bad_npz", "bad_view", "bad_meta", "no_folder"}
    assert "bad_npz" in caplog.text and "skipped" in caplog.text
    for folder in ("bad_npz", "bad_view", "bad_meta"):
        assert folders[folder].exists()

    # changes keep the unreadable entries in the index (nothing disappears silently)
    again.add("new", views(1), unit(7))
    names_in_index = [e.get("name") for e in
                      json.loads((tmp_path / "library.json").read_text())["objects"]]
    assert {"bad_npz", "bad_view", "bad_meta", "no_folder"} <= set(names_in_index)
    # ... and they can be removed explicitly, or replaced
    again.remove("bad_npz")
    assert not folders["bad_npz"].exists()
    again.add("bad_view", views(1), unit(8), replace=True)
    assert ObjectLibrary(tmp_path, "m@1").load().names() == ["good", "new", "bad_view"]


def test_unreadable_index_is_rebuilt_from_folders(tmp_path, caplog):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(1), unit(1))
    lib.add("drill", views(1), unit(2))
    (tmp_path / "library.json").write_text("garbage")
    with caplog.at_level(logging.WARNING):
        again = ObjectLibrary(tmp_path, "m@1").load()
    assert sorted(again.names()) == ["drill", "mug"]
    assert "unreadable" in caplog.text


def test_reembedding_on_model_change(tmp_path, caplog):
    old = ObjectLibrary(tmp_path, "model@aaaa").load()
    mug_views = views(3, seed=11, channels=4)
    old.add("mug", mug_views, unit(1))
    old.add("drill", views(2, seed=12), unit(2))
    calls = []

    def embed(vs):
        calls.append(len(vs))
        return fake_embed(vs)

    with caplog.at_level(logging.INFO):
        new = ObjectLibrary(tmp_path, "model@bbbb").load(embed_fn=embed)
    assert calls == [3, 2] and new.reembedded == ["mug", "drill"]
    assert "re-embedding" in caplog.text
    assert new.names() == ["mug", "drill"]
    np.testing.assert_allclose(new.embeddings_matrix().embeddings[0],
                               fake_embed(mug_views).vector, rtol=1e-6)
    index = json.loads((tmp_path / "library.json").read_text())
    assert {e["model_id"] for e in index["objects"]} == {"model@bbbb"}
    # stored views are kept as they were
    for a, b in zip(mug_views, new.views("mug")):
        np.testing.assert_array_equal(a, b)
    # a third start with the same model does not re-embed
    ObjectLibrary(tmp_path, "model@bbbb").load(embed_fn=pytest.fail)


def test_reembedding_failure_skips_object(tmp_path):
    old = ObjectLibrary(tmp_path, "model@aaaa").load()
    old.add("mug", views(1), unit(1))

    def broken(vs):
        raise ValueError("embedder exploded")
    new = ObjectLibrary(tmp_path, "model@bbbb").load(embed_fn=broken)
    assert new.names() == [] and new.skipped == ["mug"]
    # still on disk: a later start with a working embedder recovers it
    assert ObjectLibrary(tmp_path, "model@bbbb").load(embed_fn=fake_embed).names() == ["mug"]
