"""ObjectLibrary without ROS: persistence, atomic writes, corrupt entries, re-embedding."""
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from yolz_ros.runtime import library as library_module
from yolz_ros.runtime.library import LibraryError, ObjectLibrary, validate_name


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
    assert lib.names() == [] and lib.snapshot.embeddings.shape[0] == 0
    mug_views = views(3, seed=1, channels=4)
    lib.add("mug", mug_views, unit(1))
    lib.add("drill", views(2, seed=2), fake_embed(views(2, seed=2)))
    names, emb = lib.snapshot.names, lib.snapshot.embeddings
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
    np.testing.assert_array_equal(again.snapshot.embeddings,
                                  lib.snapshot.embeddings)
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
    np.testing.assert_allclose(reloaded.snapshot.embeddings[0], unit(1))


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
    # the orphan (an interrupted write) is moved out of objects/ into quarantine/, not deleted
    assert not orphan.exists() and "not in the index" in caplog.text
    assert [p.name.endswith("-ghost.123") for p in (tmp_path / "quarantine").iterdir()] == [True]


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
    np.testing.assert_allclose(new.snapshot.embeddings[0],
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


# -- crashes and hostile data ---------------------------------------------------------------
def index_entries(directory):
    return json.loads((directory / "library.json").read_text())["objects"]


def test_tmp_prefixed_name_survives_restart(tmp_path):
    """An object called '.tmp-mug' must not be taken for an interrupted write."""
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add(".tmp-mug", views(3, seed=1), unit(1))
    lib.add("mug", views(1, seed=2), unit(2))
    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert again.names() == [".tmp-mug", "mug"] and again.skipped == []
    assert again.num_views(".tmp-mug") == 3
    for entry in index_entries(tmp_path):
        assert not entry["folder"].startswith(".")  # never like the library's own temporaries


@pytest.mark.parametrize("folder", ["..", ".", "", "../objects", "/etc", "a/../..", "a\\..",
                                    "sub/dir"])
def test_remove_never_leaves_objects_dir(tmp_path, folder):
    """An index entry whose folder is '..' must not let remove() delete the library."""
    library_dir = tmp_path / "library"
    lib = ObjectLibrary(library_dir, "m@1").load()
    lib.add("mug", views(1, seed=1), unit(1))
    unrelated = library_dir / "unrelated.txt"
    unrelated.write_text("keep me")
    beside = tmp_path / "beside.txt"
    beside.write_text("keep me too")
    entries = index_entries(library_dir)
    entries.append({"name": "evil", "folder": folder, "num_views": 1, "model_id": "x",
                    "created": ""})
    (library_dir / "library.json").write_text(json.dumps({"format": "yolz-library/1",
                                                          "objects": entries}))
    again = ObjectLibrary(library_dir, "m@1").load()
    assert again.names() == ["mug"] and "evil" in again.skipped
    again.remove("evil")
    assert (library_dir / "library.json").is_file() and (library_dir / "objects").is_dir()
    assert unrelated.read_text() == "keep me" and beside.read_text() == "keep me too"
    assert ObjectLibrary(library_dir, "m@1").load().names() == ["mug"]
    assert "evil" not in [e["name"] for e in index_entries(library_dir)]


def test_symlinked_object_folder_is_not_followed(tmp_path):
    library_dir = tmp_path / "library"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("x")
    lib = ObjectLibrary(library_dir, "m@1").load()
    lib.add("mug", views(1, seed=1), unit(1))
    folder = index_entries(library_dir)[0]["folder"]
    real = library_dir / "objects" / folder
    for p in real.iterdir():
        (outside / p.name).write_bytes(p.read_bytes())
    import shutil
    shutil.rmtree(real)
    real.symlink_to(outside, target_is_directory=True)
    again = ObjectLibrary(library_dir, "m@1").load()
    assert again.names() == [] and again.skipped == ["mug"]
    again.remove("mug")
    assert (outside / "precious.txt").exists()


def crash_before_commit(lib, monkeypatch, *args, **kwargs):
    """lib.add(...) killed after its folder is in place but before the index commit: like
    kill -9, nothing is cleaned up (no rollback runs)."""
    class Killed(BaseException):
        pass

    def killed(self):
        raise Killed()
    with monkeypatch.context() as m:
        m.setattr(ObjectLibrary, "_write_index", killed)
        m.setattr(library_module.shutil, "rmtree", lambda *a, **k: None)
        with pytest.raises(Killed):
            lib.add(*args, **kwargs)


def test_rebuild_never_prefers_an_unacknowledged_write(tmp_path, monkeypatch, caplog):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("warm", views(8, seed=1), unit(1))
    lib.add("cold", views(2, seed=2), unit(2))
    crash_before_commit(lib, monkeypatch, "warm", views(7, seed=3), unit(3), replace=True)
    crash_before_commit(lib, monkeypatch, "ghost", views(1, seed=4), unit(4))
    assert len(list((tmp_path / "objects").iterdir())) == 4  # two orphans on disk
    (tmp_path / "library.json").write_text("garbage")
    with caplog.at_level(logging.WARNING):
        again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert sorted(again.names()) == ["cold", "warm"]
    assert again.num_views("warm") == 8  # the acknowledged version, not the newer orphan
    np.testing.assert_allclose(again.snapshot.embeddings[again.names().index("warm")],
                               unit(1))
    assert "unreadable" in caplog.text
    # the rebuilt index is written, the unacknowledged folders are out of objects/
    assert sorted(e["name"] for e in index_entries(tmp_path)) == ["cold", "warm"]
    assert len(list((tmp_path / "objects").iterdir())) == 2
    assert ObjectLibrary(tmp_path, "m@1").load().num_views("warm") == 8


def test_orphans_are_quarantined_and_bounded(tmp_path, monkeypatch, caplog):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), unit(1))
    for i in range(library_module.QUARANTINE_KEEP + 3):
        crash_before_commit(lib, monkeypatch, "mug", views(1, seed=10 + i), unit(10 + i),
                            replace=True)
        with caplog.at_level(logging.WARNING):
            lib = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
        assert lib.names() == ["mug"] and lib.num_views("mug") == 2
        assert len(list((tmp_path / "objects").iterdir())) == 1
    assert "quarantine" in caplog.text
    kept = list((tmp_path / "quarantine").iterdir())
    assert len(kept) == library_module.QUARANTINE_KEEP


def test_corrupt_view_png_is_detected_on_load(tmp_path, caplog):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("good", views(2, seed=1), unit(1))
    lib.add("noisy", views(3, seed=2), unit(2))
    folder = tmp_path / "objects" / [e for e in index_entries(tmp_path)
                                     if e["name"] == "noisy"][0]["folder"]
    size = (folder / "view_001.png").stat().st_size
    (folder / "view_001.png").write_bytes(np.random.default_rng(0).bytes(size))
    with caplog.at_level(logging.WARNING):
        again = ObjectLibrary(tmp_path, "m@1").load()
    assert again.names() == ["good"] and again.skipped == ["noisy"]
    assert "view_001.png" in again.skipped_reasons["noisy"]
    assert "view_001.png" in caplog.text
    assert folder.exists()  # kept on disk


def tree(directory):
    """Every file under ``directory`` with its bytes: what "nothing changed" compares."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("index", [{"format": "yolz-library/3", "objects": []},
                                   {"objects": []}])
def test_index_of_another_format_is_refused_and_left_alone(tmp_path, index):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), unit(1))
    (tmp_path / "objects" / ".tmp-leftover").mkdir()  # would be cleaned by a load
    index["objects"] = index_entries(tmp_path)
    (tmp_path / "library.json").write_text(json.dumps(index))
    before = tree(tmp_path)
    with pytest.raises(LibraryError, match="format .*yolz-library/2.*Nothing was read or changed"):
        ObjectLibrary(tmp_path, "other@2").load(embed_fn=pytest.fail)
    assert tree(tmp_path) == before
    assert (tmp_path / "objects" / ".tmp-leftover").is_dir()
    assert not (tmp_path / "quarantine").exists()


def test_object_without_view_checksums_is_skipped_and_kept(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("good", views(1, seed=1), unit(1))
    lib.add("nosums", views(2, seed=2), unit(2))
    folder = tmp_path / "objects" / [e for e in index_entries(tmp_path)
                                     if e["name"] == "nosums"][0]["folder"]
    meta = json.loads((folder / "meta.json").read_text())
    del meta["view_sha256"]
    (folder / "meta.json").write_text(json.dumps(meta))
    before = tree(folder)
    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert again.names() == ["good"] and again.skipped == ["nosums"]
    assert "view_sha256" in again.skipped_reasons["nosums"]
    assert tree(folder) == before
    assert "nosums" in [e["name"] for e in index_entries(tmp_path)]


def test_index_entry_naming_a_temporary_is_refused_not_deleted(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), unit(1))
    entries = index_entries(tmp_path)
    tmp_folder = tmp_path / "objects" / ".tmp-mug.0123456789ab"
    (tmp_path / "objects" / entries[0]["folder"]).rename(tmp_folder)
    entries[0]["folder"] = tmp_folder.name
    (tmp_path / "library.json").write_text(json.dumps({"format": "yolz-library/1",
                                                       "objects": entries}))
    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert again.names() == [] and again.skipped == ["mug"]
    assert "temporaries" in again.skipped_reasons["mug"]
    assert (tmp_folder / "view_001.png").is_file()
    again.remove("mug")  # forgotten, but the folder it named is not deleted
    assert (tmp_folder / "view_001.png").is_file()


def test_rebuild_ignores_folders_without_the_commit_mark(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), unit(1))
    lib.add("drill", views(1, seed=2), unit(2))
    drill = tmp_path / "objects" / [e for e in index_entries(tmp_path)
                                    if e["name"] == "drill"][0]["folder"]
    (drill / library_module.COMMIT_MARK).unlink()
    (tmp_path / "library.json").write_text("garbage")
    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert again.names() == ["mug"]
    assert [e["name"] for e in index_entries(tmp_path)] == ["mug"]


# -- negative views ("not that one") ---------------------------------------------------------
def embed_one(view):
    return fake_embed([view]).vector


def no_check(arrays, vector, existing):
    assert "vector" in arrays and "per_view" in arrays


def test_negative_views_are_stored_reloaded_and_kept_across_changes(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), fake_embed(views(2, seed=1)))
    lib.add("drill", views(1, seed=2), fake_embed(views(1, seed=2)))
    assert lib.snapshot.negatives is None  # none anywhere: detect() runs as before
    negs = views(2, seed=9, channels=4)
    snap = lib.add_negatives("mug", negs, embed_one, no_check)
    assert lib.counts() == [("mug", 2, 2), ("drill", 1, 0)]
    assert snap.negatives[1] is None and snap.negatives[0].shape == (2, 8)
    np.testing.assert_array_equal(snap.negatives[0][1], embed_one(negs[1]))
    np.testing.assert_array_equal(snap.embeddings[0], fake_embed(views(2, seed=1)).vector)
    folder = tmp_path / "objects" / index_entries(tmp_path)[0]["folder"]
    assert (folder / "negative_001.png").is_file() and not (folder / "negative_002.png").exists()
    assert json.loads((tmp_path / "library.json").read_text())["format"] == "yolz-library/2"
    assert index_entries(tmp_path)[0]["num_negatives"] == 2

    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)  # a restart
    assert again.counts() == [("mug", 2, 2), ("drill", 1, 0)]
    np.testing.assert_array_equal(again.snapshot.negatives[0], snap.negatives[0])
    for got, want in zip(again.negative_views("mug"), negs):
        np.testing.assert_array_equal(got, want)
    again.append_views("mug", views(1, seed=3), fake_embed, max_views=32)  # negatives kept
    assert again.counts()[0] == ("mug", 3, 2)
    np.testing.assert_array_equal(again.snapshot.negatives[0], snap.negatives[0])
    again.add("mug", views(1, seed=4), unit(4), replace=True)  # a new object: none
    assert again.counts()[0] == ("mug", 1, 0) and again.snapshot.negatives is None


def test_a_refused_negative_stores_nothing(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), fake_embed(views(2, seed=1)))
    lib.add_negatives("mug", views(1, seed=5), embed_one, no_check)
    before = tree(tmp_path)

    def refuse_second(arrays, vector, existing):
        if existing >= 2:
            raise ValueError("too many")

    with pytest.raises(ValueError, match="too many"):  # the 2nd of this call is the 3rd
        lib.add_negatives("mug", views(2, seed=6), embed_one, refuse_second)
    assert tree(tmp_path) == before and lib.counts() == [("mug", 2, 1)]
    with pytest.raises(LibraryError, match="no object named 'cup'"):
        lib.add_negatives("cup", views(1, seed=6), embed_one, no_check)
    with pytest.raises(LibraryError, match="at least one"):
        lib.add_negatives("mug", [], embed_one, no_check)
    assert tree(tmp_path) == before


def test_a_corrupt_negative_view_skips_the_object_and_keeps_its_files(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), fake_embed(views(2, seed=1)))
    lib.add_negatives("mug", views(1, seed=5), embed_one, no_check)
    folder = tmp_path / "objects" / index_entries(tmp_path)[0]["folder"]
    (folder / "negative_000.png").write_bytes(b"not a png")
    again = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert again.names() == [] and again.skipped == ["mug"]
    assert "negative_000.png is corrupt" in again.skipped_reasons["mug"]
    assert (folder / "negative_000.png").read_bytes() == b"not a png"


def test_negatives_are_re_embedded_with_the_object_for_another_model(tmp_path):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), fake_embed(views(2, seed=1)))
    negs = views(1, seed=5)
    lib.add_negatives("mug", negs, lambda v: unit(7), no_check)
    again = ObjectLibrary(tmp_path, "m@2").load(embed_fn=fake_embed)
    assert again.reembedded == ["mug"] and again.counts() == [("mug", 2, 1)]
    np.testing.assert_allclose(again.snapshot.negatives[0][0], embed_one(negs[0]))


def test_a_version_1_library_loads_without_negatives_and_upgrades_on_change(tmp_path):
    """A library written before negative views: index format /1, no num_negatives anywhere."""
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", views(2, seed=1), fake_embed(views(2, seed=1)))
    entries = index_entries(tmp_path)
    for entry in entries:
        del entry["num_negatives"]
        meta_path = tmp_path / "objects" / entry["folder"] / "meta.json"
        meta = json.loads(meta_path.read_text())
        del meta["num_negatives"], meta["negative_sha256"]
        meta_path.write_text(json.dumps(meta))
    (tmp_path / "library.json").write_text(json.dumps({"format": "yolz-library/1",
                                                       "objects": entries}))
    old = ObjectLibrary(tmp_path, "m@1").load(embed_fn=pytest.fail)
    assert old.counts() == [("mug", 2, 0)] and old.snapshot.negatives is None
    assert json.loads((tmp_path / "library.json").read_text())["format"] == "yolz-library/1"
    old.add_negatives("mug", views(1, seed=5), embed_one, no_check)
    assert json.loads((tmp_path / "library.json").read_text())["format"] == "yolz-library/2"
    assert ObjectLibrary(tmp_path, "m@1").load().counts() == [("mug", 2, 1)]
