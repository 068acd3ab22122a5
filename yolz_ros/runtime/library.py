"""The object library: registered objects, their reference views and embeddings, on disk.

Plain Python (no ROS). Layout of ``directory``::

    library.json                 index: {"format", "objects": [{name, folder, num_views,
                                 num_negatives, model_id, created}]} -- the commit point of
                                 every change
    objects/o-<id>-<name>/       one folder per stored version of an object
        meta.json                {name, num_views, num_negatives, model_id, created,
                                 embedding_dim, view_sha256, negative_sha256}
        view_000.png ...         the reference views as received (RGB or RGBA, lossless)
        negative_000.png ...     negative views: look-alikes the object is not (same encoding)
        embedding.npz            vector [E], per_view [N, E], agreement [N], negatives [M, E]
                                 (each negative embedded alone; no pickles)
        committed                written once the index names this folder (see below)
    quarantine/                  folders no index entry names (interrupted writes), moved out
                                 of objects/ at start; the newest QUARANTINE_KEEP are kept

Every write is atomic: files are written under a temporary name (prefix ``.tmp-``) in the same
directory and ``os.replace``d into place; an object's folder is written under a temporary name
and renamed; the index is rewritten last (atomically), so a crash at any point leaves either the
old or the new state. Folder names never start with ``.``, so no object name can make its folder
look like a temporary. Entries that cannot be read (including a view PNG whose checksum or
structure is wrong) are skipped with a warning and left on disk untouched (they stay in the
index, so nothing disappears silently). Embeddings made by another model are recomputed from the
stored views at ``load``.

Every path taken from the index must name a plain folder directly inside ``objects/`` (no
``..``, no separators, no symlinks) before anything is read or deleted.

If the index is unreadable, it is rebuilt from the folders: only folders carrying the
``committed`` mark count (a mark is written after the index commit that acknowledged the folder,
and taken away before the commit that retires it), so an interrupted, never-acknowledged write is
never preferred.

Formats: ``yolz-library/2`` (INDEX_FORMAT) added negative views; a ``yolz-library/1`` library
(written before them) loads as objects without negatives, and is rewritten as /2 by the next
change. An index of another format than READ_FORMATS is refused (LibraryError, nothing read further,
nothing written): this code cannot tell what a different layout keeps, so it must not rewrite it.
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

from yolz_ros.runtime.atomic_file import TMP_PREFIX, write_bytes_atomic
from yolz_ros.runtime.view_png import decode_view_png, encode_view_png

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
INDEX_FORMAT = "yolz-library/2"
READ_FORMATS = ("yolz-library/1", INDEX_FORMAT)  # /1: before negative views (none stored)
INDEX_FILE = "library.json"
OBJECTS_DIR = "objects"
QUARANTINE_DIR = "quarantine"
QUARANTINE_KEEP = 5  # quarantined folders kept (newest first); older ones are deleted
COMMIT_MARK = "committed"
VIEW_FILE = "view_{:03d}.png"
NEGATIVE_FILE = "negative_{:03d}.png"
FOLDER_PREFIX = "o-"  # new object folders: o-<12 hex>-<name>; never starts with "."

log = logging.getLogger("yolz_ros.runtime.library")



def _remove_path(path: Path) -> None:
    """Delete a folder (never following a symlink) or a file; errors are ignored."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass

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
    num_negatives: int = 0
    negatives: Optional[np.ndarray] = field(default=None, repr=False)  # float32 [M, E] or None


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the registered objects, in grid order."""
    names: tuple
    embeddings: np.ndarray  # float32 [K, E], read-only
    model_id: str
    # per object None or float32 [M, E] (its negative views' embeddings); None when no object
    # has any, so Detector.detect(negatives=None) runs exactly as without them
    negatives: Optional[tuple] = None


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
    try:
        return encode_view_png(view)
    except ValueError as exc:
        raise LibraryError(str(exc)) from None


def _decode_png(path: Path) -> np.ndarray:
    return decode_view_png(path.read_bytes(), path.name)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _sha256(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def _check_folder_name(folder) -> str:
    """The folder name if it can only mean a folder directly inside objects/, else ValueError."""
    if not isinstance(folder, str) or folder in ("", ".", "..") or len(folder) > 255 \
            or any(c in folder for c in "/\\\x00"):
        raise ValueError(f"bad folder {folder!r} (must be a plain folder name inside objects/)")
    if folder.startswith(TMP_PREFIX):
        raise ValueError(f"folder {folder!r}: names starting with {TMP_PREFIX!r} are the "
                         "library's temporaries, never an object's")
    return folder


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
        self._entries: tuple = ()  # ((name, num_views), ...) swapped with the snapshot
        self._counts: tuple = ()  # ((name, num_views, num_negatives), ...) likewise
        self._skipped_names: tuple = ()

    # -- paths -----------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.directory / INDEX_FILE

    @property
    def objects_dir(self) -> Path:
        return self.directory / OBJECTS_DIR

    @property
    def quarantine_dir(self) -> Path:
        return self.directory / QUARANTINE_DIR

    def _ensure_dirs(self) -> None:
        self.objects_dir.mkdir(parents=True, exist_ok=True)

    def _folder_path(self, folder) -> Path:
        """objects/<folder>, checked to be a real folder name directly inside objects/ (not a
        symlink, nothing resolving elsewhere); ValueError otherwise. Nothing is read from or
        deleted at a path from the index before it passes here."""
        path = self.objects_dir / _check_folder_name(folder)
        if path.is_symlink():
            raise ValueError(f"folder {folder!r} is a symlink; refused")
        if path.resolve().parent != self.objects_dir.resolve():
            raise ValueError(f"folder {folder!r} resolves outside {self.objects_dir}")
        return path

    def _delete_folder(self, folder) -> None:
        """Delete objects/<folder> if ``folder`` passes _folder_path; else leave everything."""
        try:
            path = self._folder_path(folder)
        except ValueError as exc:
            self.log.warning(f"object library {self.directory}: not deleting {folder!r}: {exc}")
            return
        shutil.rmtree(path, ignore_errors=True)

    def _set_mark(self, folder: str, on: bool) -> None:
        path = self._folder_path(folder)
        if on:
            write_bytes_atomic(path / COMMIT_MARK, b"index commit acknowledged this folder\n")
        else:
            try:
                (path / COMMIT_MARK).unlink()
            except FileNotFoundError:
                pass

    def _new_folder_name(self, name: str) -> str:
        return f"{FOLDER_PREFIX}{uuid.uuid4().hex[:12]}-{name}"

    # -- loading ---------------------------------------------------------------------------
    def load(self, embed_fn: Optional[Callable] = None) -> "ObjectLibrary":
        """Read the library. Objects embedded by another model are re-embedded with
        ``embed_fn(views)`` (views: list of HxWx3/HxWx4 uint8 arrays) when it is given;
        unreadable entries are skipped with a warning and left on disk."""
        with self._lock:
            entries, rebuilt = self._read_index()  # refuses another format before any write
            self._ensure_dirs()
            self._objects.clear()
            self._skipped.clear()
            self.skipped_reasons.clear()
            self.reembedded = []
            referenced = set()
            for entry in entries:
                folder = entry.get("folder") if isinstance(entry, dict) else None
                if isinstance(folder, str):
                    referenced.add(folder)
            self._clean_temporaries(keep=referenced)
            for entry in entries:
                name = entry.get("name") if isinstance(entry, dict) else None
                folder = entry.get("folder") if isinstance(entry, dict) else None
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
                                     f"in {self.objects_dir}/{folder})")
                    self._skipped[name] = entry
                    self.skipped_reasons[name] = reason
                    continue
                self._objects[name] = obj
            if rebuilt:
                self._write_index()
            self._quarantine_orphans(referenced)
            stale = [o for o in self._objects.values() if o.model_id != self.model_id]
            for obj in stale:
                self._reembed(obj, embed_fn)
            self._rebuild_snapshot()
            return self

    def _clean_temporaries(self, keep=()) -> None:
        """Delete leftovers of interrupted writes (names starting with TMP_PREFIX). A folder the
        index names is kept even so: its entry is refused at load (_check_folder_name), and
        what an index names is never deleted behind the user's back."""
        for path in list(self.objects_dir.iterdir()) + list(self.directory.iterdir()):
            if path.name.startswith(TMP_PREFIX) and not (path.parent == self.objects_dir
                                                         and path.name in keep):
                self.log.info(f"object library: removing incomplete write {path}")
                _remove_path(path)

    def _quarantine_orphans(self, referenced) -> None:
        """Move folders no index entry names (interrupted writes, never acknowledged) out of
        objects/ into quarantine/, keeping the newest QUARANTINE_KEEP there."""
        orphans = [p for p in sorted(self.objects_dir.iterdir())
                   if p.name not in referenced and not p.name.startswith(TMP_PREFIX)]
        if not orphans:
            return
        self.quarantine_dir.mkdir(exist_ok=True)
        for path in orphans:
            target = self.quarantine_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}"
            try:
                os.replace(path, target)
                os.utime(target)  # retention counts from the quarantine time
            except OSError as exc:
                self.log.warning(f"object library: cannot quarantine {path}: {exc}")
                continue
            self.log.warning(f"object library {self.directory}: {path.name} is not in the index "
                             f"(an interrupted write, never acknowledged); moved to quarantine "
                             f"{target}")
        kept = sorted(self.quarantine_dir.iterdir(), key=lambda p: p.lstat().st_mtime,
                      reverse=True)
        for path in kept[QUARANTINE_KEEP:]:
            _remove_path(path)

    def _read_index(self):
        """(index entries, rebuilt?). Raises LibraryError for an index of another format."""
        if not self.index_path.exists():
            if self.objects_dir.is_dir() and any(
                    p for p in self.objects_dir.iterdir() if not p.name.startswith(TMP_PREFIX)):
                self.log.warning(f"object library index {self.index_path} is missing; "
                                 "rebuilding it from the acknowledged object folders")
                return self._scan_folders(), True
            return [], False
        try:
            data = json.loads(self.index_path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
                raise ValueError("no 'objects' list")
        except Exception as exc:  # noqa: BLE001
            self.quarantine_dir.mkdir(exist_ok=True)
            keep = self.quarantine_dir / f"{INDEX_FILE}.{time.strftime('%Y%m%dT%H%M%S')}.unreadable"
            try:
                shutil.copyfile(self.index_path, keep)
            except OSError:
                keep = None
            self.log.warning(f"object library index {self.index_path} is unreadable ({exc}); "
                             "rebuilding it from the acknowledged object folders"
                             + (f" (the unreadable file is kept as {keep})" if keep else ""))
            return self._scan_folders(), True
        if data.get("format") not in READ_FORMATS:
            raise LibraryError(
                f"object library {self.directory}: library.json is of format "
                f"{data.get('format')!r}; this version reads only {READ_FORMATS}. Nothing was "
                "read or changed: use the version that wrote it, or set library_dir to another "
                "folder")
        return data["objects"], False

    def _scan_folders(self) -> list:
        """Index entries recovered from the folders' meta.json: per name, the newest folder
        with the commit mark (one without was never acknowledged, or was retired)."""
        found: dict[str, list] = {}
        for path in sorted(self.objects_dir.iterdir()):
            if path.is_symlink() or not path.is_dir() or path.name.startswith(TMP_PREFIX):
                continue
            if not (path / COMMIT_MARK).is_file():
                continue
            try:
                meta = json.loads((path / "meta.json").read_text())
                name = meta["name"]
                mtime = path.stat().st_mtime
            except Exception:  # noqa: BLE001
                continue
            found.setdefault(name, []).append((mtime, path.name, meta))
        entries = []
        for name, candidates in found.items():
            _, folder, meta = max(candidates, key=lambda c: c[0])
            entries.append({"name": name, "folder": folder,
                            "num_views": meta.get("num_views", 0),
                            "num_negatives": meta.get("num_negatives", 0),
                            "model_id": meta.get("model_id", ""),
                            "created": meta.get("created", "")})
        entries.sort(key=lambda e: str(e["created"]))
        return entries

    def _load_entry(self, entry: dict) -> StoredObject:
        folder = entry["folder"]
        path = self._folder_path(folder)
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("name") != entry["name"]:
            raise ValueError(f"meta.json names {meta.get('name')!r}")
        num_views = int(meta["num_views"])
        hashes = meta.get("view_sha256")
        if not isinstance(hashes, list) or len(hashes) != num_views:
            raise ValueError("meta.json view_sha256 does not list one checksum per view")
        num_negatives = int(meta.get("num_negatives", 0))  # absent: written before negatives
        neg_hashes = meta.get("negative_sha256", [])
        if not isinstance(neg_hashes, list) or len(neg_hashes) != num_negatives:
            raise ValueError("meta.json negative_sha256 does not list one checksum per negative")
        files = [(VIEW_FILE.format(i), hashes[i]) for i in range(num_views)]
        files += [(NEGATIVE_FILE.format(i), neg_hashes[i]) for i in range(num_negatives)]
        for file, digest in files:
            view = path / file
            if view.is_symlink() or not view.is_file():
                raise ValueError(f"{file} is missing")
            if _sha256(view.read_bytes()) != digest:
                raise ValueError(f"{file} is corrupt (its sha256 does not match meta.json)")
        with np.load(path / "embedding.npz", allow_pickle=False) as npz:
            vector = np.asarray(npz["vector"], np.float32)
            negatives = (np.asarray(npz["negatives"], np.float32) if num_negatives else None)
        if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
            raise ValueError(f"bad embedding vector, shape {vector.shape}")
        if negatives is not None and (negatives.shape != (num_negatives, vector.size)
                                      or not np.all(np.isfinite(negatives))):
            raise ValueError(f"bad negative embeddings, shape {negatives.shape} (expected "
                             f"{(num_negatives, vector.size)})")
        vector.setflags(write=False)
        if negatives is not None:
            negatives.setflags(write=False)
        return StoredObject(entry["name"], folder, num_views, str(meta.get("model_id", "")),
                            str(meta.get("created", "")), vector, num_negatives, negatives)

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
            negative_views = self.negative_views(obj.name)
            negatives = (negative_views,
                         [np.asarray(embed_fn([v]).vector, np.float32) for v in negative_views])
            self._write_object(obj.name, views, embedding, created=obj.created,
                               negatives=negatives)
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

    def num_views(self, name: str) -> int:
        return dict(self._entries)[name]

    def entries(self) -> list:
        """[(name, num_views)] in grid order. Lock-free (an immutable tuple swapped with the
        snapshot): a listing never waits behind a registration writing its files."""
        return list(self._entries)

    def counts(self) -> list:
        """[(name, num_views, num_negatives)] in grid order, lock-free, from one state."""
        return list(self._counts)

    def views(self, name: str) -> list:
        """The stored reference views of an object (RGB or RGBA uint8 arrays)."""
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                raise LibraryError(f"no object named {name!r}")
            path = self._folder_path(obj.folder)
            return [_decode_png(path / VIEW_FILE.format(i)) for i in range(obj.num_views)]

    def negative_views(self, name: str) -> list:
        """The stored negative views of an object (look-alikes it is not), oldest first."""
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                raise LibraryError(f"no object named {name!r}")
            path = self._folder_path(obj.folder)
            return [_decode_png(path / NEGATIVE_FILE.format(i))
                    for i in range(obj.num_negatives)]

    def embedding_arrays(self, name: str) -> dict:
        """The stored embedding of an object: {"vector" [E], and where stored "per_view" [N, D],
        "agreement" [N], "negatives" [M, E]} (float32 copies)."""
        with self._lock:
            obj = self.stored(name)
            path = self._folder_path(obj.folder)
            with np.load(path / "embedding.npz", allow_pickle=False) as npz:
                return {key: np.asarray(npz[key], np.float32) for key in npz.files}

    @property
    def snapshot(self) -> Snapshot:
        """The registered objects now: immutable (names, float32 [K, E]), swapped whole."""
        return self._snapshot

    @property
    def skipped(self) -> list:
        return list(self._skipped_names)

    def _kept_negatives(self, name: str):
        """(views, vectors) of the stored object's negatives, to carry into its next folder."""
        obj = self._objects[name]
        if not obj.num_negatives:
            return None
        return self.negative_views(name), list(obj.negatives)

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

    def append_views(self, name: str, views: Sequence[np.ndarray], embed_fn: Callable,
                     max_views: int):
        """Add views to a stored object: its stored views are kept, ``views`` appended, and the
        embedding recomputed by ``embed_fn`` from all of them. Returns (snapshot, embedding).
        Raises LibraryError for an unknown object or more than ``max_views`` views in all."""
        if len(views) == 0:
            raise LibraryError("at least one view is needed")
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                known = ", ".join(self._objects) or "none"
                raise LibraryError(f"no object named {name!r} (registered: {known}): register "
                                   "it first")
            total = obj.num_views + len(views)
            if total > max_views:
                raise LibraryError(f"{name!r} has {obj.num_views} views; {len(views)} more make "
                                   f"{total}, over the limit of {max_views} per object")
            all_views = self.views(name) + list(views)
            embedding = embed_fn(all_views)
            self._write_object(name, all_views, embedding, created=obj.created,
                               negatives=self._kept_negatives(name))
            self._rebuild_snapshot()
            return self._snapshot, embedding

    def add_negatives(self, name: str, views: Sequence[np.ndarray], embed_one: Callable,
                      check: Callable):
        """Store ``views`` as negative views of object ``name`` (look-alikes it is not). Each is
        embedded alone (``embed_one(view)`` -> vector [E]) and passed to ``check(arrays,
        vector, existing)`` (arrays: embedding_arrays(name); existing: negatives before it),
        which raises to refuse it; nothing is stored unless every view passes. The object's
        views and embedding are kept. Returns the new snapshot. LibraryError for an unknown
        object; whatever ``check`` raises otherwise."""
        if len(views) == 0:
            raise LibraryError("at least one negative view is needed")
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                known = ", ".join(self._objects) or "none"
                raise LibraryError(f"no object named {name!r} (registered: {known}): register "
                                   "the object first, then its negative views")
            arrays = self.embedding_arrays(name)
            old_views, old_vectors = self._kept_negatives(name) or ([], [])
            vectors = []
            for view in views:
                vector = np.asarray(embed_one(view), np.float32).reshape(-1)
                if vector.shape != obj.vector.shape or not np.all(np.isfinite(vector)):
                    raise LibraryError(f"a negative view's embedding has shape {vector.shape}, "
                                       f"the object's {obj.vector.shape}")
                check(arrays, vector, len(old_vectors) + len(vectors))
                vectors.append(vector)
            self._write_object(name, self.views(name), arrays, created=obj.created,
                               negatives=(old_views + list(views), old_vectors + vectors))
            self._rebuild_snapshot()
            return self._snapshot

    def stored(self, name: str) -> StoredObject:
        """The stored record of an object (name, folder, num_views, model_id, created)."""
        obj = self._objects.get(name)
        if obj is None:
            known = ", ".join(self._objects) or "none"
            raise LibraryError(f"no object named {name!r} (registered: {known})")
        return obj

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
            try:
                self._set_mark(folder, False)  # retired before the commit (see _scan_folders)
            except (ValueError, OSError):
                pass
            self._write_index()  # commit point
            self._rebuild_snapshot()
            self._delete_folder(folder)  # only a folder directly inside objects/
            return self._snapshot

    def _entry(self, obj: StoredObject) -> dict:
        return {"name": obj.name, "folder": obj.folder, "num_views": obj.num_views,
                "num_negatives": obj.num_negatives, "model_id": obj.model_id,
                "created": obj.created}

    def _write_index(self) -> None:
        entries = [self._entry(o) for o in self._objects.values()]
        entries += [e for n, e in self._skipped.items() if n not in self._objects]
        _atomic_write_json(self.index_path, {"format": INDEX_FORMAT, "objects": entries})

    def _write_object(self, name: str, views: list, embedding, created: str = "",
                      negatives=None) -> None:
        """Write a new folder for ``name`` (temp name, then rename), then commit the index.
        ``negatives``: None or (negative views, their vectors [E] each)."""
        self._ensure_dirs()
        arrays = dict(embedding) if isinstance(embedding, dict) else _embedding_arrays(embedding)
        negative_views, negative_vectors = negatives or ([], [])
        if negative_vectors:
            arrays["negatives"] = np.stack(negative_vectors).astype(np.float32)
        else:
            arrays.pop("negatives", None)
        created = created or _now_iso()
        folder = self._new_folder_name(name)
        tmp = self.objects_dir / f"{TMP_PREFIX}{folder}"
        tmp.mkdir()
        try:
            hashes, neg_hashes = [], []
            for pattern, group, digests in ((VIEW_FILE, views, hashes),
                                            (NEGATIVE_FILE, negative_views, neg_hashes)):
                for i, view in enumerate(group):
                    data = _encode_png(view)
                    (tmp / pattern.format(i)).write_bytes(data)
                    digests.append(_sha256(data))
            _write_npz(tmp / "embedding.npz", **arrays)
            meta = {"name": name, "num_views": len(views), "model_id": self.model_id,
                    "created": created, "embedding_dim": int(arrays["vector"].shape[0]),
                    "view_sha256": hashes, "num_negatives": len(negative_views),
                    "negative_sha256": neg_hashes}
            _atomic_write_json(tmp / "meta.json", meta)
            os.replace(tmp, self.objects_dir / folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        vector = arrays["vector"].copy()
        vector.setflags(write=False)
        negs = arrays.get("negatives")
        if negs is not None:
            negs = negs.copy()
            negs.setflags(write=False)
        new = StoredObject(name, folder, len(views), self.model_id, created, vector,
                           len(negative_views), negs)
        old = self._objects.get(name)
        old_skipped = self._skipped.get(name)
        self._objects[name] = new
        self._skipped.pop(name, None)
        try:
            if old is not None:
                self._set_mark(old.folder, False)  # retired before the commit
            self._write_index()  # commit point
        except BaseException:
            if old is not None:
                self._objects[name] = old
                try:
                    self._set_mark(old.folder, True)
                except (ValueError, OSError):
                    pass
            else:
                self._objects.pop(name, None)
            if old_skipped is not None:
                self._skipped[name] = old_skipped
            shutil.rmtree(self.objects_dir / folder, ignore_errors=True)
            raise
        self._set_mark(folder, True)  # acknowledged: the index names it
        if old is not None:
            self._delete_folder(old.folder)
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
        objects = list(self._objects.values())
        negatives = (tuple(o.negatives for o in objects)
                     if any(o.num_negatives for o in objects) else None)
        self._entries = tuple((o.name, o.num_views) for o in objects)
        self._counts = tuple((o.name, o.num_views, o.num_negatives) for o in objects)
        self._skipped_names = tuple(self._skipped)
        self._snapshot = Snapshot(names, emb, self.model_id, negatives)
