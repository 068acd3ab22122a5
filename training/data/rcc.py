"""A small, defensive reader of Qt binary resource files (`.rcc`), as GCompris ships its images.

Format (Qt's rcc, versions 1-3; all integers big-endian):
  header   b"qres", version u32, tree offset u32, data offset u32, names offset u32
           (+ flags u32 from version 3)
  tree     fixed-size nodes (14 bytes; 22 from version 2, adding a u64 modification time):
           name offset u32, flags u16, then a directory's child count u32 + first child index u32,
           or a file's country u16 + language u16 + data offset u32. Node 0 is the root.
           flags: 1 = zlib (qCompress), 2 = directory, 4 = zstd
  names    at names offset + name offset: length u16, hash u32, length UTF-16BE code units
  data     at data offset + data offset: size u32, then the bytes; a zlib entry's bytes are
           qCompress output (uncompressed size u32, then a zlib stream)

Nothing in the file is trusted: every offset and size is bounds-checked against the file, node
indices are checked and each visited once (no cycles), names must be single plain path parts,
destinations must stay inside the output folder, and sizes are capped (per entry and in total;
decompression stops at the cap, so a zip bomb costs at most the cap). A bad entry is skipped with
a reason; a bad header raises RccError.

    entries = read_rcc(blob)                       # [(path, bytes)], paths like 'a/b/c.png'
    written = extract_rcc(path, out_dir, keep=lambda p: p.endswith('.jpg'))
"""
from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

MAGIC = b"qres"
FLAG_ZLIB, FLAG_DIR, FLAG_ZSTD = 1, 2, 4
MAX_ENTRY = 32 << 20      # bytes of one (decompressed) file
MAX_TOTAL = 1 << 30       # bytes of all files of one .rcc together
MAX_NODES = 200_000
MAX_DEPTH = 32


class RccError(ValueError):
    """The file is not a readable Qt resource file."""


class _Reader:
    def __init__(self, blob: bytes):
        self.blob = blob

    def u(self, fmt: str, offset: int):
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.blob):
            raise RccError(f"read of {size} bytes at {offset} outside the file ({len(self.blob)})")
        return struct.unpack_from(fmt, self.blob, offset)


def _name(r: _Reader, names: int, offset: int) -> str:
    (length,) = r.u(">H", names + offset)
    start = names + offset + 6
    end = start + 2 * length
    if end > len(r.blob):
        raise RccError(f"name at {offset} runs past the end of the file")
    return r.blob[start:end].decode("utf-16-be", errors="strict")


def _safe_part(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0:") \
        and len(name) <= 255


def _payload(r: _Reader, data: int, offset: int, flags: int, max_entry: int) -> bytes:
    (size,) = r.u(">I", data + offset)
    start = data + offset + 4
    if start + size > len(r.blob):
        raise RccError(f"data of {size} bytes at {offset} runs past the end of the file")
    raw = r.blob[start:start + size]
    if flags & FLAG_ZSTD:
        raise RccError("zstd-compressed entry (not supported)")
    if not flags & FLAG_ZLIB:
        if size > max_entry:
            raise RccError(f"entry of {size} bytes over the cap {max_entry}")
        return raw
    if size < 4:
        raise RccError("compressed entry shorter than its length prefix")
    (declared,) = struct.unpack_from(">I", raw, 0)
    if declared > max_entry:
        raise RccError(f"entry declares {declared} bytes, over the cap {max_entry}")
    d = zlib.decompressobj()
    try:
        out = d.decompress(raw[4:], max_entry + 1)
    except zlib.error as exc:
        raise RccError(f"bad zlib stream: {exc}") from exc
    if len(out) > max_entry or d.unconsumed_tail:
        raise RccError(f"entry inflates past the cap {max_entry}")
    if len(out) != declared:
        raise RccError(f"entry inflates to {len(out)} bytes, declared {declared}")
    return out


def read_rcc(blob: bytes, max_entry: int = MAX_ENTRY, max_total: int = MAX_TOTAL,
             keep: Callable[[str], bool] | None = None,
             problems: list | None = None) -> list[tuple[str, bytes]]:
    """[(relative posix path, content)] of every readable file entry (those `keep` accepts).

    Bad entries are skipped (their reasons appended to `problems`); a bad header raises RccError."""
    r = _Reader(blob)
    if r.blob[:4] != MAGIC:
        raise RccError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = r.u(">IIII", 4)
    if version not in (1, 2, 3):
        raise RccError(f"unsupported rcc version {version}")
    node_size = 14 if version == 1 else 22
    problems = problems if problems is not None else []
    out: list[tuple[str, bytes]] = []
    total = 0
    seen: set[int] = set()
    stack = [(0, (), 0)]  # (node index, path parts, depth)
    while stack:
        index, parts, depth = stack.pop()
        where = "/".join(parts) or "<root>"
        if index in seen or len(seen) >= MAX_NODES or depth > MAX_DEPTH:
            problems.append(f"{where}: node {index} repeated, too deep or too many nodes")
            continue
        seen.add(index)
        try:
            node = tree + index * node_size
            name_off, flags = r.u(">IH", node)
            name = "" if index == 0 else _name(r, names, name_off)
            if index and not _safe_part(name):
                raise RccError(f"unsafe name {name!r}")
            path = parts + ((name,) if index else ())
            if flags & FLAG_DIR:
                count, first = r.u(">II", node + 6)
                if count > MAX_NODES or first + count > MAX_NODES:
                    raise RccError(f"directory with {count} children at {first}")
                for child in range(first + count - 1, first - 1, -1):
                    stack.append((child, path, depth + 1))
                continue
            rel = "/".join(path)
            if keep is not None and not keep(rel):
                continue
            (data_off,) = r.u(">I", node + 10)
            content = _payload(r, data, data_off, flags, max_entry)
            if total + len(content) > max_total:
                raise RccError(f"total size over the cap {max_total}")
            total += len(content)
            out.append((rel, content))
        except (RccError, UnicodeDecodeError) as exc:
            problems.append(f"{where}: {exc}")
    return out


def safe_destination(root: Path, rel: str) -> Path | None:
    """root/rel, or None when rel is absolute, has empty/'..' parts or resolves outside root."""
    parts = rel.split("/")  # raw parts: '', '.', '..' (absolute, doubled slashes) are refused
    if not rel or any(not _safe_part(p) for p in parts):
        return None
    dest = (root / Path(*parts)).resolve()
    return dest if dest.is_relative_to(root.resolve()) else None


def extract_rcc(path: Path, out_dir: Path, keep: Callable[[str], bool] | None = None,
                max_file: int = 256 << 20, **caps) -> list[Path]:
    """Write the entries of one .rcc file (those `keep` accepts) under out_dir; the written paths.

    Files bigger than max_file are refused whole (RccError); unsafe entries are skipped."""
    path, out_dir = Path(path), Path(out_dir)
    if path.stat().st_size > max_file:
        raise RccError(f"{path}: {path.stat().st_size} bytes, over the cap {max_file}")
    problems: list[str] = []
    entries = read_rcc(path.read_bytes(), keep=keep, problems=problems, **caps)
    for p in problems:
        log.warning("%s: skipped %s", path.name, p)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rel, content in entries:
        dest = safe_destination(out_dir, rel)
        if dest is None:
            log.warning("%s: refused %r (leaves the output folder)", path.name, rel)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        written.append(dest)
    return written


def build_rcc(files: dict[str, bytes], compress: bool = True, version: int = 2) -> bytes:
    """A .rcc holding `files` (relative path -> bytes): for tests and round trips."""
    root: dict = {}
    for rel, content in files.items():
        node = root
        parts = rel.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = content
    names, name_at = bytearray(), {}

    def name_offset(name: str) -> int:
        if name not in name_at:
            name_at[name] = len(names)
            enc = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(enc) // 2, 0) + enc)
        return name_at[name]

    nodes: list = [None]  # breadth-first: a directory's children are consecutive
    data = bytearray()
    queue = [(0, "", root)]
    while queue:
        index, name, content = queue.pop(0)
        if isinstance(content, dict):
            first = len(nodes)
            kids = sorted(content.items())
            nodes.extend([None] * len(kids))
            nodes[index] = (name, FLAG_DIR, struct.pack(">II", len(kids), first))
            queue.extend((first + k, kn, kc) for k, (kn, kc) in enumerate(kids))
        else:
            payload = struct.pack(">I", len(content)) + zlib.compress(content) if compress \
                else content
            nodes[index] = (name, FLAG_ZLIB if compress else 0,
                            struct.pack(">HHI", 0, 0, len(data)))
            data.extend(struct.pack(">I", len(payload)) + payload)
    tree = bytearray()
    for name, flags, tail in nodes:
        tree.extend(struct.pack(">IH", name_offset(name) if name else 0, flags) + tail)
        if version >= 2:
            tree.extend(b"\0" * 8)
    header = 20 if version < 3 else 24
    t_off = header
    d_off = t_off + len(tree)
    n_off = d_off + len(data)
    head = MAGIC + struct.pack(">IIII", version, t_off, d_off, n_off)
    if version >= 3:
        head += struct.pack(">I", 0)
    return bytes(head + tree + data + names)
