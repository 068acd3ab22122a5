"""The object library: registered objects, their reference views and embeddings, on disk.

Plain Python (no ROS). Layout of ``directory``::

    library.json                 index: {"format", "objects": [{name, folder, num_views,
                                 model_id, created}]} -- the commit point of every change
    objects/<name>.<id>/         one folder per stored version of an object
        meta.json                {name, num_views, model_id, created, embedding_dim}
        view_000.png ...         the reference views as received (RGB or RGBA, lossless)
        embedding.npz            vector [E], per_view [N, E], agreement [N] (no pickles)

Every write is atomic: files are written under a temporary name in the same directory and
``os.replace``d into place; an object's folder is written under a temporary name and renamed;
the index is rewritten last (atomically), so a crash at any point leaves either the old or the
new state. Entries that cannot be read are skipped with a warning and left on disk untouched
(they stay in the index, so nothing disappears silently). Embeddings made by another model are
recomputed from the stored views at ``load``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from yolz_ros.atomic_file import TMP_PREFIX, write_bytes_atomic

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
INDEX_FORMAT = "yolz-library/1"
INDEX_FILE = "library.json"
OBJECTS_DIR = "objects"

log = logging.getLogger("yolz_ros.library")


class LibraryError(ValueError):
    """A request the library cannot carry out (bad name, duplicate, unknown object...)."""


def validate_name(name: str) -> str:
    """Return the name if it is a valid object name, else raise LibraryError saying why."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise LibraryError(
            f"invalid object name {name!r}: use 1..64 characters from A-Z a-z 0-9 _ . - "
            "(e.g. 'red_mug')")
    return name


@dataclass(frozen=True)
class StoredObject:
    name: str
    folder: str
    num_views: int
    model_id: str
    created: str
    vector: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the registered objects, in grid order."""
    names: tuple
    embeddings: np.ndarray  # float32 [K, E], read-only
    model_id: str

    def __iter__(self):  # allows `names, emb = library.embeddings_matrix()`
        return iter((self.names, self.embeddings))


def _atomic_write_json(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _write_npz(path: Path, **arrays) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def _embedding_arrays(embedding) -> dict:
    """Accept an ObjectEmbedding-like object (vector/per_view/agreement) or a bare vector."""
    if hasattr(embedding, "vector"):
        out = {"vector": np.asarray(embedding.vector, np.float32)}
        if getattr(embedding, "per_view", None) is not None:
            out["per_view"] = np.asarray(embedding.per_view, np.float32)
        if getattr(embedding, "agreement", None) is not None:
            out["agreement"] = np.asarray(embedding.agreement, np.float32)
    else:
        out = {"vector": np.asarray(embedding, np.float32)}
    vec = out["vector"]
    if vec.ndim != 1 or vec.size == 0 or not np.all(np.isfinite(vec)):
        raise LibraryError(f"embedding must be a finite 1-D vector, got shape {vec.shape}")
    return out


def _encode_png(view: np.ndarray) -> bytes:
    import cv2
    view = np.ascontiguousarray(view)
    if view.dtype != np.uint8:
        raise LibraryError(f"views must be uint8, got {view.dtype}")
    if view.ndim == 2:
        bgr = view
    elif view.ndim == 3 and view.shape[2] == 3:
        bgr = cv2.cvtColor(view, cv2.COLOR_RGB2BGR)
    elif view.ndim == 3 and view.shape[2] == 4:
        bgr = cv2.cvtColor(view, cv2.COLOR_RGBA2BGRA)
    else:
        raise LibraryError(f"views must be HxW, HxWx3 or HxWx4, got shape {view.shape}")
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise LibraryError("PNG encoding of a view failed")
    return buf.tobytes()


def _decode_png(path: Path) -> np.ndarray:
    import cv2
    data = np.frombuffer(path.read_bytes(), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode {path.name}")
    if img.dtype != np.uint8:
        raise ValueError(f"{path.name}: not 8-bit")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ObjectLibrary:
    """Registered objects of one model, persisted under ``directory``. Thread-safe."""

    def __init__(self, directory, model_id: str, logger=None, embedding_dim: int = 0):
        """``embedding_dim``: the model's (the empty snapshot is then float32 [0, E], which
        Detector.detect takes as "no objects")."""
        self.directory = Path(directory).expanduser()
        self.model_id = str(model_id)
        self.embedding_dim = int(embedding_dim)
        self.log = logger or log
        self._lock = threading.RLock()
        self._objects: dict[str, StoredObject] = {}  # insertion order = grid order
        self._skipped: dict[str, dict] = {}  # name -> index entry kept as-is (unreadable)
        self.skipped_reasons: dict[str, str] = {}
        self.reembedded: list[str] = []
        self._snapshot = Snapshot((), np.zeros((0, self.embedding_dim), np.float32),
                                  self.model_id)

    # -- paths -----------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.directory / INDEX_FILE

    @property
    def objects_dir(self) -> Path:
        return self.directory / OBJECTS_DIR

    def _ensure_dirs(self) -> None:
        self.objects_dir.mkdir(parents=True, exist_ok=True)

    # -- loading ---------------------------------------------------------------------------
    def load(self, embed_fn: Optional[Callable] = None) -> "ObjectLibrary":
        """Read the library. Objects embedded by another model are re-embedded with
        ``embed_fn(views)`` (views: list of HxWx3/HxWx4 uint8 arrays) when it is given;
        unreadable entries are skipped with a warning and left on disk."""
        with self._lock:
            self._ensure_dirs()
            self._objects.clear()
            self._skipped.clear()
            self.skipped_reasons.clear()
            self.reembedded = []
            self._clean_temporaries()
            entries = self._read_index()
            referenced = set()
            for entry in entries:
                name = entry.get("name") if isinstance(entry, dict) else None
                folder = entry.get("folder") if isinstance(entry, dict) else None
                if isinstance(folder, str):
                    referenced.add(folder)
                if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                    self.log.warning(f"object library {self.directory}: index entry {entry!r} "
                                     "has no valid name; skipped")
                    continue
                try:
                    obj = self._load_entry(entry)
                except Exception as exc:  # noqa: BLE001 - corrupt data of any kind
                    reason = f"{type(exc).__name__}: {exc}"
                    self.log.warning(f"object library {self.directory}: object {name!r} "
                                     f"cannot be read ({reason}); skipped (its files are kept "
                                     f"in {self.objects_dir / str(folder)})")
                    self._skipped[name] = entry
                    self.skipped_reasons[name] = reason
                    continue
                self._objects[name] = obj
            for path in sorted(self.objects_dir.iterdir()):
                if path.is_dir() and not path.name.startswith(TMP_PREFIX) \
                        and path.name not in referenced:
                    self.log.warning(f"object library {self.directory}: folder {path} is not "
                                     "in the index (an interrupted write?); left in place")
            stale = [o for o in self._objects.values() if o.model_id != self.model_id]
            for obj in stale:
                self._reembed(obj, embed_fn)
            self._rebuild_snapshot()
            return self

    def _clean_temporaries(self) -> None:
        for path in list(self.objects_dir.iterdir()) + list(self.directory.iterdir()):
            if path.name.startswith(TMP_PREFIX):
                self.log.info(f"object library: removing incomplete write {path}")
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        path.unlink()
                    except OSError:
                        pass

    def _read_index(self) -> list:
        if not self.index_path.exists():
            return self._scan_folders() if any(self.objects_dir.iterdir()) else []
        try:
            data = json.loads(self.index_path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
                raise ValueError("no 'objects' list")
            return data["objects"]
        except Exception as exc:  # noqa: BLE001
            self.log.warning(f"object library index {self.index_path} is unreadable ({exc}); "
                             "rebuilding the list of objects from the object folders")
            return self._scan_folders()

    def _scan_folders(self) -> list:
        """Index entries recovered from the folders' meta.json (newest folder per name)."""
        found: dict[str, dict] = {}
        for path in sorted(self.objects_dir.iterdir()):
            if not path.is_dir() or path.name.startswith(TMP_PREFIX):
                continue
            try:
                meta = json.loads((path / "meta.json").read_text())
                name = meta["name"]
                mtime = path.stat().st_mtime
            except Exception:  # noqa: BLE001
                continue
            if name not in found or mtime > found[name][1]:
                found[name] = ({**meta, "folder": path.name}, mtime)
        return [entry for entry, _ in found.values()]

    def _load_entry(self, entry: dict) -> StoredObject:
        folder = entry["folder"]
        if not isinstance(folder, str) or "/" in folder or folder in ("", ".", ".."):
            raise ValueError(f"bad folder {folder!r}")
        path = self.objects_dir / folder
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("name") != entry["name"]:
            raise ValueError(f"meta.json names {meta.get('name')!r}")
        num_views = int(meta["num_views"])
        for i in range(num_views):
            if not (path / f"view_{i:03d}.png").is_file():
                raise ValueError(f"view_{i:03d}.png is missing")
        with np.load(path / "embedding.npz", allow_pickle=False) as npz:
            vector = np.asarray(npz["vector"], np.float32)
        if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
            raise ValueError(f"bad embedding vector, shape {vector.shape}")
        vector.setflags(write=False)
        return StoredObject(entry["name"], folder, num_views, str(meta.get("model_id", "")),
                            str(meta.get("created", "")), vector)

    def _reembed(self, obj: StoredObject, embed_fn) -> None:
        if embed_fn is None:
            self.log.warning(f"object {obj.name!r} was embedded by model {obj.model_id!r}, not "
                             f"{self.model_id!r}, and no embedder was given; skipped")
            self._skip_loaded(obj.name, "embedded by another model")
            return
        self.log.info(f"object {obj.name!r} was embedded by model {obj.model_id!r}; "
                      f"re-embedding its {obj.num_views} stored views with {self.model_id!r}")
        try:
            views = self.views(obj.name)
            embedding = embed_fn(views)
            self._write_object(obj.name, views, embedding, created=obj.created)
            self.reembedded.append(obj.name)
        except Exception as exc:  # noqa: BLE001
            self.log.warning(f"re-embedding object {obj.name!r} failed ({exc}); skipped "
                             "(its files are kept)")
            self._skip_loaded(obj.name, f"re-embedding failed: {exc}")

    def _skip_loaded(self, name: str, reason: str) -> None:
        obj = self._objects.pop(name)
        self._skipped[name] = self._entry(obj)
        self.skipped_reasons[name] = reason

    # -- queries -------------------------------------------------------------------------
    def names(self) -> list:
        return list(self._snapshot.names)

    def __contains__(self, name) -> bool:
        return name in self._snapshot.names

    def __len__(self) -> int:
        return len(self._snapshot.names)

    def num_views(self, name: str) -> int:
        with self._lock:
            return self._objects[name].num_views

    def entries(self) -> list:
        """[(name, num_views)] in grid order."""
        with self._lock:
            return [(o.name, o.num_views) for o in self._objects.values()]

    def views(self, name: str) -> list:
        """The stored reference views of an object (RGB or RGBA uint8 arrays)."""
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                raise LibraryError(f"no object named {name!r}")
            path = self.objects_dir / obj.folder
            return [_decode_png(path / f"view_{i:03d}.png") for i in range(obj.num_views)]

    def embeddings_matrix(self) -> Snapshot:
        """An immutable (names, float32 [K, E]) snapshot; unpacks as ``names, emb``."""
        return self._snapshot

    @property
    def snapshot(self) -> Snapshot:
        """The registered objects now: immutable (names, float32 [K, E]), swapped whole."""
        return self._snapshot

    @property
    def skipped(self) -> list:
        return list(self._skipped)

    # -- changes -------------------------------------------------------------------------
    def add(self, name: str, views: Sequence[np.ndarray], embedding, replace: bool = False):
        """Store an object (views: RGB/RGBA uint8 arrays; embedding: ObjectEmbedding or vector).
        Raises LibraryError for a bad name, a duplicate without ``replace`` or bad data."""
        validate_name(name)
        if len(views) == 0:
            raise LibraryError("at least one view is needed")
        with self._lock:
            if name in self._objects and not replace:
                raise LibraryError(f"object {name!r} already exists: set replace=true to "
                                   "overwrite it, or remove it first")
            arrays = _embedding_arrays(embedding)
            dims = {o.vector.shape[0] for o in self._objects.values() if o.name != name}
            if dims and arrays["vector"].shape[0] not in dims:
                raise LibraryError(f"embedding has {arrays['vector'].shape[0]} dimensions, the "
                                   f"library's objects have {dims.pop()}")
            self._write_object(name, list(views), arrays)
            self._rebuild_snapshot()
            return self._snapshot

    def remove(self, name: str):
        """Forget an object and delete its stored views. Raises LibraryError if unknown."""
        with self._lock:
            if name in self._objects:
                folder = self._objects.pop(name).folder
            elif name in self._skipped:  # an unreadable entry can still be removed on request
                folder = self._skipped.pop(name).get("folder")
                self.skipped_reasons.pop(name, None)
            else:
                known = ", ".join(self._objects) or "none"
                raise LibraryError(f"no object named {name!r} (registered: {known})")
            self._write_index()  # commit point
            self._rebuild_snapshot()
            if isinstance(folder, str) and folder and "/" not in folder:
                shutil.rmtree(self.objects_dir / folder, ignore_errors=True)
            return self._snapshot

    def _entry(self, obj: StoredObject) -> dict:
        return {"name": obj.name, "folder": obj.folder, "num_views": obj.num_views,
                "model_id": obj.model_id, "created": obj.created}

    def _write_index(self) -> None:
        entries = [self._entry(o) for o in self._objects.values()]
        entries += [e for n, e in self._skipped.items() if n not in self._objects]
        _atomic_write_json(self.index_path, {"format": INDEX_FORMAT, "objects": entries})

    def _write_object(self, name: str, views: list, embedding, created: str = "") -> None:
        """Write a new folder for ``name`` (temp name, then rename), then commit the index."""
        self._ensure_dirs()
        arrays = embedding if isinstance(embedding, dict) else _embedding_arrays(embedding)
        created = created or _now_iso()
        folder = f"{name}.{uuid.uuid4().hex[:12]}"
        tmp = self.objects_dir / f"{TMP_PREFIX}{folder}"
        tmp.mkdir()
        try:
            for i, view in enumerate(views):
                (tmp / f"view_{i:03d}.png").write_bytes(_encode_png(view))
            _write_npz(tmp / "embedding.npz", **arrays)
            meta = {"name": name, "num_views": len(views), "model_id": self.model_id,
                    "created": created, "embedding_dim": int(arrays["vector"].shape[0])}
            _atomic_write_json(tmp / "meta.json", meta)
            os.replace(tmp, self.objects_dir / folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        vector = arrays["vector"].copy()
        vector.setflags(write=False)
        new = StoredObject(name, folder, len(views), self.model_id, created, vector)
        old = self._objects.get(name)
        old_skipped = self._skipped.get(name)
        self._objects[name] = new
        self._skipped.pop(name, None)
        try:
            self._write_index()  # commit point
        except BaseException:
            if old is not None:
                self._objects[name] = old
            else:
                self._objects.pop(name, None)
            if old_skipped is not None:
                self._skipped[name] = old_skipped
            shutil.rmtree(self.objects_dir / folder, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(self.objects_dir / old.folder, ignore_errors=True)
        if old_skipped is not None:
            self.log.warning(f"object {name!r} replaced an unreadable entry; its old files are "
                             f"kept in {self.objects_dir / str(old_skipped.get('folder'))}")
        self.skipped_reasons.pop(name, None)

    def _rebuild_snapshot(self) -> None:
        names = tuple(self._objects)
        if names:
            emb = np.stack([self._objects[n].vector for n in names]).astype(np.float32)
        else:
            emb = np.zeros((0, self.embedding_dim), np.float32)
        emb.setflags(write=False)
        self._snapshot = Snapshot(names, emb, self.model_id)
