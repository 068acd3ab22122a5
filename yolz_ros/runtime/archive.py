"""The `.yolz` object archive: one registered object's reference views in a file, to move an
object between machines (``library export`` / ``library import``). Plain Python, no ROS.

A `.yolz` file is a zip archive of exactly these members:

    manifest.json          {"format": "yolz-object/2", "name", "model_id", "created",
                            "views": [{"file", "sha256", "width", "height", "alpha"}, ...],
                            "negatives": [the same, for negatives/negative_NNN.png]}
    views/view_000.png     the views, lossless RGB or RGBA (alpha = the object mask)
    ...
    negatives/negative_000.png   negative views: look-alikes the object is not (0..4)

Format ``yolz-object/2`` added the negative views; ``yolz-object/1`` archives (written before
them: no "negatives") are still read, as objects without negatives.

``model_id`` names the model that embedded the object; it is informational only, since the
importing node embeds the views again with its own model. No embeddings travel in the archive.

Archives come from other people, so reading trusts nothing in them: the file, each member and
the sum of members are held to size limits (declared sizes are checked, and reads stop at the
limit whatever the header says); only the members the manifest lists are accepted, under fixed
names; symlinks, directories, devices and encrypted members are refused (a mode with permission
bits but no file type, as Python's zipfile and other writers record it, is a plain file); each
view's sha256 is checked and its PNG header size is read before it is decoded. Nothing is ever
extracted to disk.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence

import numpy as np

from yolz_ros.runtime.atomic_file import write_bytes_atomic
from yolz_ros.runtime.image import ImageError, check_encoded_size
from yolz_ros.runtime.library import LibraryError, validate_name
from yolz_ros.runtime.limits import MAX_REQUEST_BYTES, MAX_VIEW_BYTES, MAX_VIEW_PIXELS, MAX_VIEWS
from yolz_ros.runtime.negatives import MAX_NEGATIVES
from yolz_ros.runtime.view_png import decode_view_png, encode_view_png

FORMAT = "yolz-object/2"
READ_FORMATS = ("yolz-object/1", FORMAT)  # /1: before negative views
SUFFIX = ".yolz"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1024 * 1024
# all views, the negatives, the manifest and zip overhead
MAX_MEMBERS_BYTES = MAX_REQUEST_BYTES + MAX_NEGATIVES * MAX_VIEW_BYTES  # declared, together
MAX_ARCHIVE_BYTES = MAX_MEMBERS_BYTES + 1024 * 1024
# Our own archives need ~70 bytes of central directory per member; this leaves ample room for
# other zip writers while refusing a directory of a million tiny entries before it is parsed.
MAX_DIRECTORY_BYTES = 64 * 1024
VIEW_FILE_RE = re.compile(r"views/view_\d{3}\.png")
NEGATIVE_FILE_RE = re.compile(r"negatives/negative_\d{3}\.png")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # member timestamps: the same views give the same file
_END_RECORD = b"PK\x05\x06"
_END_RECORD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_DOS_DIRECTORY = 0x10  # the MS-DOS attribute byte's directory flag (low byte of external_attr)


class ArchiveError(ValueError):
    """A `.yolz` archive that cannot be written or read; the message says what is wrong."""


@dataclass(frozen=True)
class ObjectArchive:
    name: str
    views: List[np.ndarray]  # HxWx3 RGB or HxWx4 RGBA uint8
    model_id: str = ""
    created: str = ""
    negatives: List[np.ndarray] = field(default_factory=list)  # look-alikes it is not


# ------------------------------------------------------------------------------------------
# writing
def _view_file(index: int) -> str:
    return f"views/view_{index:03d}.png"


def _negative_file(index: int) -> str:
    return f"negatives/negative_{index:03d}.png"


def _member(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = compress_type
    info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain file, whatever the umask
    return info


def _encode_views(views: Sequence[np.ndarray], label: str = "view", least: int = 1,
                  most: int = MAX_VIEWS) -> List[bytes]:
    """The views as PNG bytes, held to the limits the reader applies (so every archive written
    here can be read back)."""
    if not least <= len(views) <= most:
        raise ArchiveError(f"an archive holds {least}..{most} {label}s, got {len(views)}")
    pngs = []
    for i, view in enumerate(views):
        view = np.asarray(view)
        if view.dtype != np.uint8 or view.ndim != 3 or view.shape[2] not in (3, 4):
            raise ArchiveError(f"{label} {i} must be an HxWx3 RGB or HxWx4 RGBA uint8 array, got "
                               f"shape {view.shape} {view.dtype}")
        png = encode_view_png(view)
        if len(png) > MAX_VIEW_BYTES:
            raise ArchiveError(f"{label} {i} is {len(png)} bytes as PNG, over the limit of "
                               f"{MAX_VIEW_BYTES}; downscale it")
        pngs.append(png)
    if sum(map(len, pngs)) > MAX_REQUEST_BYTES:
        raise ArchiveError(f"the {label}s are over {MAX_REQUEST_BYTES} bytes together; use "
                           f"fewer or smaller {label}s")
    return pngs


def _entries(views, pngs, file_name) -> list:
    entries = []
    for i, (view, png) in enumerate(zip(views, pngs)):
        height, width, channels = np.asarray(view).shape
        entries.append({"file": file_name(i), "sha256": hashlib.sha256(png).hexdigest(),
                        "width": int(width), "height": int(height), "alpha": channels == 4})
    return entries


def archive_bytes(name: str, views: Sequence[np.ndarray], model_id: str = "",
                  created: str = "", negatives: Sequence[np.ndarray] = ()) -> bytes:
    """The `.yolz` archive of an object (and its negative views), in memory."""
    name = _checked_name(name)
    pngs = _encode_views(views)
    neg_pngs = _encode_views(negatives, "negative view", 0, MAX_NEGATIVES)
    entries = _entries(views, pngs, _view_file)
    neg_entries = _entries(negatives, neg_pngs, _negative_file)
    manifest = {"format": FORMAT, "name": name, "model_id": str(model_id),
                "created": str(created), "views": entries, "negatives": neg_entries}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_member(MANIFEST, zipfile.ZIP_DEFLATED),
                    json.dumps(manifest, indent=2).encode("utf-8"))
        for entry, png in zip(entries + neg_entries, pngs + neg_pngs):  # PNGs: compressed
            zf.writestr(_member(entry["file"], zipfile.ZIP_STORED), png)
    return buf.getvalue()


def write_archive(path, name: str, views: Sequence[np.ndarray], model_id: str = "",
                  created: str = "", overwrite: bool = False,
                  negatives: Sequence[np.ndarray] = ()) -> Path:
    """Write the object's archive to ``path`` atomically: afterwards the file is complete, or
    (on any error) absent or as it was. An existing file is only replaced with overwrite=True."""
    path = Path(path)
    data = archive_bytes(name, views, model_id, created, negatives)  # checks before the disk
    if path.exists() and not overwrite:
        raise ArchiveError(f"{path} exists; choose another file or allow overwriting it "
                           "(--force)")
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# ------------------------------------------------------------------------------------------
# reading
def _checked_name(name) -> str:
    try:
        return validate_name(name)
    except LibraryError as exc:
        raise ArchiveError(str(exc)) from None


def _read_file(path: Path) -> bytes:
    """The archive's bytes, reading at most one byte past the size limit."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ARCHIVE_BYTES + 1)
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"{path} is over {MAX_ARCHIVE_BYTES} bytes, the most a .yolz "
                           "archive can hold; it is not an object archive")
    return data


def _check_directory_record(data: bytes) -> None:
    """Refuse, before zipfile parses it, a central directory that is too large for an object
    archive (it could list millions of entries) or in zip64 form (never needed here). Finds the
    end record the way zipfile does: at the very end, else the last one in the comment area."""
    start = len(data) - _END_RECORD_SIZE
    if start < 0 or data[start:start + 4] != _END_RECORD or data[-2:] != b"\0\0":
        start = data.rfind(_END_RECORD, max(0, len(data) - _END_RECORD_SIZE - 0x10000))
    if start < 0 or len(data) - start < _END_RECORD_SIZE:
        raise ArchiveError("not a zip archive, or a truncated one (no end of central directory "
                           "record); a .yolz file is written by `library export`")
    entries, size, offset = struct.unpack("<HII", data[start + 10:start + 20])
    if (entries == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF
            or (start >= 20 and data[start - 20:start - 16] == _ZIP64_LOCATOR)):
        raise ArchiveError("zip64 archives are not .yolz object archives")
    if entries > MAX_VIEWS + MAX_NEGATIVES + 1 or size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(f"the archive lists {entries} members ({size} bytes of directory); "
                           f"a .yolz archive has a manifest, at most {MAX_VIEWS} views and "
                           f"{MAX_NEGATIVES} negative views")


def _open_zip(data: bytes) -> zipfile.ZipFile:
    _check_directory_record(data)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, struct.error) as exc:
        raise ArchiveError(f"not a valid zip archive ({exc}); the file may be truncated or "
                           "corrupt: export it again") from None


def _name_problem(name: str) -> str:
    """Why a member name is not acceptable, or '' if it is manifest.json or a view file."""
    if name == MANIFEST or VIEW_FILE_RE.fullmatch(name) or NEGATIVE_FILE_RE.fullmatch(name):
        return ""
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if "\\" in name:
        return "a name with backslashes"
    if ".." in name.split("/"):
        return "a path with '..'"
    if name.endswith("/"):
        return "a directory"
    return (f"not {MANIFEST} or a view file views/view_NNN.png (or a negative view "
            "negatives/negative_NNN.png)")


def _check_member(info: zipfile.ZipInfo) -> None:
    label = f"archive member {info.filename!r}"
    problem = _name_problem(info.filename)
    if problem:
        raise ArchiveError(f"{label} is {problem}; a .yolz archive holds only {MANIFEST}, "
                           "views/view_NNN.png and negatives/negative_NNN.png files")
    mode = info.external_attr >> 16  # the Unix mode, where the writer recorded one
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{label} is a symbolic link; refused")
    # Many zip writers (Python's zipfile among them: 0o600) record permission bits without a
    # file type; such a member is a plain file. A type other than a regular file is refused.
    if kind and kind != stat.S_IFREG:
        raise ArchiveError(f"{label} is not a regular file (mode {oct(mode)}); refused")
    if info.external_attr & _DOS_DIRECTORY:
        raise ArchiveError(f"{label} is marked as a directory; refused")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{label} is encrypted; .yolz archives are never encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(f"{label} uses compression method {info.compress_type}; only "
                           "stored and deflated members are accepted")
    limit = MAX_MANIFEST_BYTES if info.filename == MANIFEST else MAX_VIEW_BYTES
    if info.file_size > limit:
        raise ArchiveError(f"{label} declares {info.file_size} bytes, over the limit of "
                           f"{limit}")


def _check_members(infos: Sequence[zipfile.ZipInfo]) -> None:
    """Every member well-formed, no name twice, declared sizes within the limits."""
    seen = set()
    for info in infos:
        _check_member(info)
        if info.filename in seen:
            raise ArchiveError(f"archive member {info.filename!r} appears more than once; "
                               "refused")
        seen.add(info.filename)
    if MANIFEST not in seen:
        raise ArchiveError(f"the archive has no {MANIFEST}; it is not a .yolz object archive")
    total = sum(info.file_size for info in infos)
    if total > MAX_MEMBERS_BYTES:
        raise ArchiveError(f"the archive's members declare {total} bytes together, over the "
                           f"limit of {MAX_MEMBERS_BYTES}")


def _read_bounded(stream, limit: int, label: str) -> bytes:
    """At most ``limit`` bytes of ``stream``: reads limit + 1 to tell, never more (a member can
    expand far beyond what its header declares)."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ArchiveError(f"{label} expands past {limit} bytes; refused (a zip bomb?)")
    return data


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    label = f"archive member {info.filename!r}"
    try:
        with zf.open(info) as stream:
            return _read_bounded(stream, limit, label)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError,
            RuntimeError, OSError, struct.error) as exc:  # CRC, truncation, bad deflate data
        raise ArchiveError(f"{label} cannot be read ({exc}); the archive is corrupt: export "
                           "it again") from None


def _parse_manifest(data: bytes) -> dict:
    """manifest.json -> a dict with the right format, a valid name, string metadata and a list
    of 1..MAX_VIEWS view entries with distinct, well-formed file names."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArchiveError(f"{MANIFEST} must hold a JSON object")
    if manifest.get("format") not in READ_FORMATS:
        raise ArchiveError(f"{MANIFEST} has format {manifest.get('format')!r}; this yolz_ros "
                           f"reads {READ_FORMATS} (a newer yolz_ros may read it)")
    manifest["name"] = _checked_name(manifest.get("name"))
    for key in ("model_id", "created"):
        if not isinstance(manifest.setdefault(key, ""), str):
            raise ArchiveError(f"{MANIFEST}: {key!r} must be a string")
    views = manifest.get("views")
    if not isinstance(views, list) or not 1 <= len(views) <= MAX_VIEWS:
        count = len(views) if isinstance(views, list) else "no list of"
        raise ArchiveError(f"{MANIFEST} lists {count} views; an object has 1..{MAX_VIEWS}")
    if manifest["format"] == "yolz-object/1" and "negatives" in manifest:
        raise ArchiveError(f"{MANIFEST} of format 'yolz-object/1' lists negatives; they came "
                           "with 'yolz-object/2'")
    negatives = manifest.setdefault("negatives", [])
    if not isinstance(negatives, list) or len(negatives) > MAX_NEGATIVES:
        count = len(negatives) if isinstance(negatives, list) else "no list of"
        raise ArchiveError(f"{MANIFEST} lists {count} negative views; an object has "
                           f"0..{MAX_NEGATIVES}")
    files = set()
    for group, pattern in ((views, VIEW_FILE_RE), (negatives, NEGATIVE_FILE_RE)):
        for i, entry in enumerate(group):
            _check_view_entry(i, entry, pattern)
            if entry["file"] in files:
                raise ArchiveError(f"{MANIFEST} lists {entry['file']!r} twice")
            files.add(entry["file"])
    return manifest


def _check_view_entry(index: int, entry, pattern=VIEW_FILE_RE) -> None:
    kind = "view" if pattern is VIEW_FILE_RE else "negative view"
    label = f"{MANIFEST} {kind} {index}"
    if not isinstance(entry, dict):
        raise ArchiveError(f"{label} must be a JSON object")
    if not isinstance(entry.get("file"), str) or not pattern.fullmatch(entry["file"]):
        want = "views/view_NNN.png" if pattern is VIEW_FILE_RE else "negatives/negative_NNN.png"
        raise ArchiveError(f"{label}: 'file' must be {want}, got {entry.get('file')!r}")
    if not isinstance(entry.get("sha256"), str) or not SHA256_RE.fullmatch(entry["sha256"]):
        raise ArchiveError(f"{label}: 'sha256' must be 64 lowercase hex digits")
    for key in ("width", "height"):
        value = entry.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ArchiveError(f"{label}: {key!r} must be a positive integer")
    if not isinstance(entry.get("alpha"), bool):
        raise ArchiveError(f"{label}: 'alpha' must be true or false")


def _check_listed(infos: Sequence[zipfile.ZipInfo], manifest: dict) -> None:
    """The members are exactly the manifest plus the files it lists."""
    listed = {entry["file"] for entry in manifest["views"] + manifest["negatives"]}
    present = {info.filename for info in infos} - {MANIFEST}
    unlisted, missing = sorted(present - listed), sorted(listed - present)
    if unlisted:
        raise ArchiveError(f"archive member {unlisted[0]!r} is not listed in {MANIFEST}; "
                           "refused")
    if missing:
        raise ArchiveError(f"{MANIFEST} lists {missing[0]!r} but the archive has no such "
                           "member")


def _decode_view(png: bytes, entry: dict) -> np.ndarray:
    """A view's PNG, verified against its manifest entry: hash, then header size, then pixels."""
    label = f"view {entry['file']}"
    if hashlib.sha256(png).hexdigest() != entry["sha256"]:
        raise ArchiveError(f"{label}: sha256 does not match {MANIFEST}; the archive is corrupt "
                           "or was altered")
    try:
        width, height, _ = check_encoded_size(png, MAX_VIEW_PIXELS)
    except ImageError as exc:
        raise ArchiveError(f"{label}: {exc}") from None
    if (width, height) != (entry["width"], entry["height"]):
        raise ArchiveError(f"{label} is {width}x{height}, but {MANIFEST} says "
                           f"{entry['width']}x{entry['height']}")
    try:
        view = decode_view_png(png, label)
    except ValueError as exc:
        raise ArchiveError(str(exc)) from None
    if (view.shape[2] == 4) != entry["alpha"]:
        raise ArchiveError(f"{label}: alpha channel does not match {MANIFEST}")
    return view


def read_archive(path) -> ObjectArchive:
    """Read and verify a `.yolz` archive; ArchiveError saying what is wrong if it is not a
    sound object archive. Everything happens in memory."""
    path = Path(path)
    with _open_zip(_read_file(path)) as zf:
        infos = zf.infolist()
        _check_members(infos)
        by_name = {info.filename: info for info in infos}
        manifest = _parse_manifest(_read_member(zf, by_name[MANIFEST], MAX_MANIFEST_BYTES))
        _check_listed(infos, manifest)
        groups = []
        for key in ("views", "negatives"):
            views, total = [], 0
            for entry in manifest[key]:
                png = _read_member(zf, by_name[entry["file"]], MAX_VIEW_BYTES)
                total += len(png)
                if total > MAX_REQUEST_BYTES:
                    raise ArchiveError(f"the {key} expand past {MAX_REQUEST_BYTES} bytes "
                                       "together; refused")
                views.append(_decode_view(png, entry))
            groups.append(views)
    return ObjectArchive(manifest["name"], groups[0], manifest["model_id"], manifest["created"],
                         groups[1])
