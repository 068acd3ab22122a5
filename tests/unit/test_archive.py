"""The `.yolz` object archive (yolz_ros/archive.py): round trip, atomic and refusing writes, and
hostile archives, each refused with ArchiveError naming what is wrong. Plain Python, no ROS.

Hostile archives are built valid in every other respect, so each case is caught by the check
it targets (and the message is asserted to say so)."""
import hashlib
import io
import json
import os
import stat
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest

from yolz_ros.runtime import archive as arc
from yolz_ros.runtime import atomic_file
from yolz_ros.runtime.archive import ArchiveError, read_archive, write_archive
from yolz_ros.runtime.view_png import encode_view_png


# ------------------------------------------------------------------------------------------
# building archives, good and bad
def make_views(n=2, alpha=(False, True), seed=0):
    rng = np.random.default_rng(seed)
    views = []
    for i in range(n):
        channels = 4 if alpha[i % len(alpha)] else 3
        views.append(rng.integers(0, 256, (12 + i, 16 + 2 * i, channels), dtype=np.uint8))
    return views


def member(name, compress=zipfile.ZIP_STORED, mode=stat.S_IFREG | 0o644):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress
    info.external_attr = mode << 16
    return info


def view_entry(index, png, view):
    return {"file": f"views/view_{index:03d}.png", "sha256": hashlib.sha256(png).hexdigest(),
            "width": view.shape[1], "height": view.shape[0], "alpha": view.shape[2] == 4}


def manifest_for(views, name="mug"):
    pngs = [encode_view_png(v) for v in views]
    entries = [view_entry(i, png, v) for i, (png, v) in enumerate(zip(pngs, views))]
    return {"format": arc.FORMAT, "name": name, "model_id": "m", "created": "c",
            "views": entries}, pngs


def good_members(views=None, name="mug"):
    """[(ZipInfo, bytes)] of a sound archive, to be altered by a test."""
    manifest, pngs = manifest_for(make_views(1) if views is None else views, name)
    members = [(member(arc.MANIFEST, zipfile.ZIP_DEFLATED), json.dumps(manifest).encode())]
    members += [(member(e["file"]), png) for e, png in zip(manifest["views"], pngs)]
    return members


def zip_bytes(members):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of duplicate names
        with zipfile.ZipFile(buf, "w") as zf:
            for info, data in members:
                zf.writestr(info, data)
    return buf.getvalue()


def write_zip(path, members):
    path.write_bytes(zip_bytes(members))
    return path


def refused(path, *fragments):
    with pytest.raises(ArchiveError) as err:
        read_archive(path)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def with_manifest(manifest, pngs_members):
    return [(member(arc.MANIFEST, zipfile.ZIP_DEFLATED), json.dumps(manifest).encode()),
            *pngs_members]


def set_sizes(data, name, size):
    """Make both headers of member ``name`` declare ``size`` uncompressed bytes (a lie)."""
    data = bytearray(data)
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo(name)
    struct.pack_into("<I", data, info.header_offset + 22, size)  # local file header
    pos = zf.start_dir
    for entry in zf.infolist():  # central directory, in order
        n, m, k = struct.unpack_from("<HHH", data, pos + 28)
        if entry.filename == name:
            struct.pack_into("<I", data, pos + 24, size)
        pos += 46 + n + m + k
    return bytes(data)


def huge_png(width, height):
    """A PNG whose header declares width x height (no pixel data behind it)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------
# writing and reading back
def test_round_trip_keeps_pixels_and_metadata(tmp_path):
    views = make_views(3)
    path = write_archive(tmp_path / "mug.yolz", "mug", views, model_id="yolz-v2",
                         created="2025-01-02T03:04:05Z")
    got = read_archive(path)
    assert (got.name, got.model_id, got.created) == ("mug", "yolz-v2", "2025-01-02T03:04:05Z")
    assert [v.shape for v in got.views] == [v.shape for v in views]
    assert [v.shape[2] for v in got.views] == [3, 4, 3]  # RGB and RGBA both kept
    for want, have in zip(views, got.views):
        assert have.dtype == np.uint8 and np.array_equal(want, have)


def test_written_layout_follows_the_format(tmp_path):
    path = write_archive(tmp_path / "a.yolz", "mug", make_views(2))
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        manifest = json.loads(zf.read(arc.MANIFEST))
        assert set(infos) == {arc.MANIFEST, "views/view_000.png", "views/view_001.png"}
        assert infos[arc.MANIFEST].compress_type == zipfile.ZIP_DEFLATED
        assert infos["views/view_000.png"].compress_type == zipfile.ZIP_STORED
        for entry in manifest["views"]:
            assert hashlib.sha256(zf.read(entry["file"])).hexdigest() == entry["sha256"]
    assert manifest["format"] == "yolz-object/2" and manifest["name"] == "mug"
    assert manifest["negatives"] == []
    assert [(e["width"], e["height"], e["alpha"]) for e in manifest["views"]] == [
        (16, 12, False), (18, 13, True)]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "a.yolz"
    path.write_bytes(b"keep me")
    with pytest.raises(ArchiveError, match="exists"):
        write_archive(path, "mug", make_views(1))
    assert path.read_bytes() == b"keep me"
    write_archive(path, "mug", make_views(1), overwrite=True)
    assert read_archive(path).name == "mug"


def _only(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_bad_input_writes_nothing(tmp_path):
    path = tmp_path / "a.yolz"
    with pytest.raises(ArchiveError, match="HxWx3"):
        write_archive(path, "mug", [np.zeros((8, 8), np.uint8)])
    with pytest.raises(ArchiveError, match="invalid object name"):
        write_archive(path, "../mug", make_views(1))
    with pytest.raises(ArchiveError, match="1..32 views"):
        write_archive(path, "mug", [])
    assert _only(tmp_path) == []


def test_failed_write_leaves_no_file_and_no_partial_one(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic_file.os, "fsync", disk_full)
    with pytest.raises(ArchiveError, match="cannot write .*No space left"):
        write_archive(tmp_path / "a.yolz", "mug", make_views(1))
    assert _only(tmp_path) == []  # neither the archive nor a temporary file

    (tmp_path / "b.yolz").write_bytes(b"old")
    with pytest.raises(ArchiveError):
        write_archive(tmp_path / "b.yolz", "mug", make_views(1), overwrite=True)
    assert _only(tmp_path) == ["b.yolz"] and (tmp_path / "b.yolz").read_bytes() == b"old"


def test_write_into_missing_folder_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="cannot write"):
        write_archive(tmp_path / "no" / "a.yolz", "mug", make_views(1))


# ------------------------------------------------------------------------------------------
# hostile member names and kinds
@pytest.mark.parametrize("name, fragment", [
    ("../evil.png", "'..'"),
    ("views/../../evil.png", "'..'"),
    ("/etc/evil.png", "absolute path"),
    ("C:/evil.png", "absolute path"),
    ("views\\view_001.png", "backslashes"),
    ("views/", "a directory"),
    ("notes.txt", "not manifest.json or a view file"),
    ("views/view_1.png", "not manifest.json or a view file"),
])
def test_refuses_bad_member_names(tmp_path, name, fragment):
    members = good_members() + [(member(name), b"x")]
    refused(write_zip(tmp_path / "a.yolz", members), repr(name), fragment)


def test_refuses_unlisted_member(tmp_path):
    extra = good_members(make_views(2))[2][1]  # a sound PNG, just not in the manifest
    members = good_members() + [(member("views/view_001.png"), extra)]
    refused(write_zip(tmp_path / "a.yolz", members), "'views/view_001.png'", "not listed")


def test_refuses_listed_but_missing_member(tmp_path):
    members = good_members(make_views(2))[:2]
    refused(write_zip(tmp_path / "a.yolz", members), "'views/view_001.png'", "no such member")


def test_refuses_duplicate_member(tmp_path):
    members = good_members()
    refused(write_zip(tmp_path / "a.yolz", members + [members[1]]), "more than once")


def test_refuses_symlink_member(tmp_path):
    members = good_members()
    info, png = members[1]
    members[1] = (member(info.filename, mode=stat.S_IFLNK | 0o777), png)
    refused(write_zip(tmp_path / "a.yolz", members), "symbolic link")


def test_refuses_directory_mode_member(tmp_path):
    members = good_members()
    info, png = members[1]
    members[1] = (member(info.filename, mode=stat.S_IFDIR | 0o755), png)
    refused(write_zip(tmp_path / "a.yolz", members), "not a regular file")


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_refuses_device_fifo_and_socket_members(tmp_path, kind):
    members = good_members()
    info, png = members[1]
    members[1] = (member(info.filename, mode=kind | 0o600), png)
    refused(write_zip(tmp_path / "a.yolz", members), repr(info.filename), "not a regular file")


def test_refuses_member_with_the_dos_directory_attribute(tmp_path):
    members = good_members()
    info, png = members[1]
    dos_dir = member(info.filename, mode=0o600)
    dos_dir.external_attr |= 0x10  # FILE_ATTRIBUTE_DIRECTORY, as DOS/Windows writers mark one
    members[1] = (dos_dir, png)
    refused(write_zip(tmp_path / "a.yolz", members), "marked as a directory")


# ------------------------------------------------------------------------------------------
# archives re-packed by other zip writers: permission bits without a file type are plain files
def repacked(path, out, info_for):
    """``path``'s members written again, one by one, with plain zipfile into ``out``;
    ``info_for(name)`` is what writestr gets (a name string or a ZipInfo)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(info_for(name), src.read(name))
    return out


def _bare_info(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o600 << 16  # permission bits only, no S_IFREG
    return info


@pytest.mark.parametrize("info_for", [lambda name: name, _bare_info],
                         ids=["writestr-name", "zipinfo-0o600"])
def test_archive_repacked_by_plain_zipfile_reads_back(tmp_path, info_for):
    views = make_views(3)
    original = write_archive(tmp_path / "mug.yolz", "mug", views, model_id="yolz-v2",
                             created="2025-01-02T03:04:05Z")
    copy = repacked(original, tmp_path / "copy.yolz", info_for)
    with zipfile.ZipFile(copy) as zf:  # what zipfile writes: 0o600 and no file type
        modes = {i.external_attr >> 16 for i in zf.infolist()}
    assert modes == {0o600} and not any(stat.S_IFMT(m) for m in modes)
    got = read_archive(copy)
    assert (got.name, got.model_id, got.created) == ("mug", "yolz-v2", "2025-01-02T03:04:05Z")
    assert len(got.views) == len(views)
    for want, have in zip(views, got.views):
        assert have.dtype == np.uint8 and np.array_equal(want, have)


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o400], ids=oct)
def test_members_with_permission_bits_only_are_plain_files(tmp_path, mode):
    # (a mode of 0 cannot be written this way: zipfile's writestr turns it into 0o600)
    members = [(member(info.filename, info.compress_type, mode=mode), data)
               for info, data in good_members(make_views(2))]
    got = read_archive(write_zip(tmp_path / "a.yolz", members))
    assert got.name == "mug" and len(got.views) == 2


def test_refuses_encrypted_member(tmp_path):
    data = bytearray(zip_bytes(good_members()))
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    pos = zf.start_dir  # the manifest's central directory entry: set "encrypted"
    struct.pack_into("<H", data, pos + 8, struct.unpack_from("<H", data, pos + 8)[0] | 1)
    path = tmp_path / "a.yolz"
    path.write_bytes(bytes(data))
    refused(path, "is encrypted; .yolz archives are never encrypted")


# ------------------------------------------------------------------------------------------
# view counts
def test_refuses_too_many_views(tmp_path):
    views = [np.full((8, 8, 3), i, np.uint8) for i in range(arc.MAX_VIEWS + 1)]
    # (the directory check leaves room for the negative views; the manifest's count refuses it)
    refused(write_zip(tmp_path / "a.yolz", good_members(views)), f"{arc.MAX_VIEWS + 1} views")


def test_refuses_manifest_listing_too_many_views(tmp_path):
    views = [np.full((8, 8, 3), i, np.uint8) for i in range(arc.MAX_VIEWS + 1)]
    manifest, pngs = manifest_for(views)
    members = [(member(e["file"]), p) for e, p in zip(manifest["views"], pngs)]
    path = write_zip(tmp_path / "a.yolz", with_manifest(manifest, members[:arc.MAX_VIEWS]))
    refused(path, f"lists {arc.MAX_VIEWS + 1} views")


def test_refuses_zero_views(tmp_path):
    manifest, _ = manifest_for(make_views(1))
    manifest["views"] = []
    refused(write_zip(tmp_path / "a.yolz", with_manifest(manifest, [])), "lists 0 views")


def test_refuses_huge_central_directory_before_parsing(tmp_path, monkeypatch):
    members = good_members() + [(member(f"x{i}"), b"") for i in range(500)]
    path = write_zip(tmp_path / "a.yolz", members)
    parsed = []
    monkeypatch.setattr(arc.zipfile, "ZipFile", lambda *a, **k: parsed.append(1))
    refused(path, "lists 502 members")
    assert parsed == []


# ------------------------------------------------------------------------------------------
# sizes and zip bombs
def test_refuses_file_over_the_size_cap(tmp_path, monkeypatch):
    path = write_archive(tmp_path / "a.yolz", "mug", make_views(2))
    monkeypatch.setattr(arc, "MAX_ARCHIVE_BYTES", path.stat().st_size - 1)
    refused(path, "is over", "bytes")


def test_refuses_declared_size_over_the_view_limit(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "a.yolz", good_members())
    monkeypatch.setattr(arc, "MAX_VIEW_BYTES", 100)  # the PNG is larger than that
    refused(path, "'views/view_000.png' declares", "over the limit of 100")


def test_refuses_declared_total_over_the_request_limit(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "a.yolz", good_members(make_views(3)))
    monkeypatch.setattr(arc, "MAX_MEMBERS_BYTES", 1000)
    refused(path, "declare", "together, over the limit of 1000")


BOMB_LIMIT = 64 * 1024


def bomb_members(declared=None):
    """A sound archive whose one view is followed by a deflated member of 4 MiB of zeros
    (a few KiB in the file), listed in the manifest as a second view."""
    members = good_members()
    manifest = json.loads(members[0][1])
    zeros = bytes(4 * 1024 * 1024)
    manifest["views"].append({"file": "views/view_001.png",
                              "sha256": hashlib.sha256(zeros).hexdigest(),
                              "width": 8, "height": 8, "alpha": False})
    members[0] = (members[0][0], json.dumps(manifest).encode())
    return members + [(member("views/view_001.png", zipfile.ZIP_DEFLATED), zeros)]


def test_zip_bomb_with_honest_header_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(arc, "MAX_VIEW_BYTES", BOMB_LIMIT)
    path = write_zip(tmp_path / "a.yolz", bomb_members())
    assert path.stat().st_size < 100_000
    refused(path, "'views/view_001.png' declares 4194304 bytes")


def test_zip_bomb_with_lying_header_stops_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(arc, "MAX_VIEW_BYTES", BOMB_LIMIT)
    path = tmp_path / "a.yolz"
    path.write_bytes(set_sizes(zip_bytes(bomb_members()), "views/view_001.png", BOMB_LIMIT))
    delivered = []
    real_read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = real_read(self, n)
        delivered.append(len(data))
        return data
    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    refused(path, "'views/view_001.png'", "corrupt")
    assert max(delivered) <= BOMB_LIMIT + 1


def test_bounded_read_never_reads_past_the_limit():
    class Endless:
        """A stream that would give as many bytes as asked, forever."""
        total = 0

        def read(self, n=-1):
            assert n >= 0, "an unbounded read"
            self.total += n
            return bytes(n)
    stream = Endless()
    with pytest.raises(ArchiveError, match="expands past 1000 bytes"):
        arc._read_bounded(stream, 1000, "member")
    assert stream.total <= 1001
    assert arc._read_bounded(io.BytesIO(b"abc"), 3, "member") == b"abc"


# ------------------------------------------------------------------------------------------
# the manifest
def test_refuses_manifest_that_is_not_json(tmp_path):
    members = good_members()
    members[0] = (members[0][0], b"{not json")
    refused(write_zip(tmp_path / "a.yolz", members), "not valid JSON")


def test_refuses_deeply_nested_manifest(tmp_path):
    members = good_members()
    members[0] = (members[0][0], b"[" * 200_000 + b"]" * 200_000)
    refused(write_zip(tmp_path / "a.yolz", members), "not valid JSON")


def test_refuses_manifest_that_is_not_an_object(tmp_path):
    members = good_members()
    members[0] = (members[0][0], b"[1, 2]")
    refused(write_zip(tmp_path / "a.yolz", members), "JSON object")


def test_refuses_wrong_format(tmp_path):
    manifest, pngs = manifest_for(make_views(1))
    manifest["format"] = "yolz-object/3"
    members = with_manifest(manifest, [(member("views/view_000.png"), pngs[0])])
    refused(write_zip(tmp_path / "a.yolz", members), "'yolz-object/3'", "yolz-object/2")


def test_refuses_missing_manifest(tmp_path):
    refused(write_zip(tmp_path / "a.yolz", good_members()[1:]), "no manifest.json")


def test_refuses_manifest_too_big(tmp_path):
    manifest, pngs = manifest_for(make_views(1))
    manifest["created"] = " " * arc.MAX_MANIFEST_BYTES  # valid JSON, just too large
    members = with_manifest(manifest, [(member("views/view_000.png"), pngs[0])])
    refused(write_zip(tmp_path / "a.yolz", members), "'manifest.json' declares",
            f"limit of {arc.MAX_MANIFEST_BYTES}")


def test_refuses_bad_object_name(tmp_path):
    members = good_members(name="mug")
    manifest = json.loads(members[0][1])
    manifest["name"] = "../../etc"
    members[0] = (members[0][0], json.dumps(manifest).encode())
    refused(write_zip(tmp_path / "a.yolz", members), "invalid object name")


@pytest.mark.parametrize("key, value, fragment", [
    ("file", "../view.png", "'file' must be"),
    ("sha256", "abc", "'sha256' must be"),
    ("width", -3, "'width' must be"),
    ("alpha", "no", "'alpha' must be"),
])
def test_refuses_bad_view_entry(tmp_path, key, value, fragment):
    members = good_members()
    manifest = json.loads(members[0][1])
    manifest["views"][0][key] = value
    members[0] = (members[0][0], json.dumps(manifest).encode())
    refused(write_zip(tmp_path / "a.yolz", members), fragment)


# ------------------------------------------------------------------------------------------
# the views
def test_refuses_sha256_mismatch(tmp_path):
    members = good_members()
    other = encode_view_png(np.zeros((12, 16, 3), np.uint8))  # same size, other pixels
    members[1] = (members[1][0], other)
    refused(write_zip(tmp_path / "a.yolz", members), "sha256 does not match")


def test_refuses_png_declaring_a_huge_size_before_decoding(tmp_path, monkeypatch):
    png = huge_png(100_000, 100_000)
    entry = {"file": "views/view_000.png", "sha256": hashlib.sha256(png).hexdigest(),
             "width": 100_000, "height": 100_000, "alpha": False}
    manifest, _ = manifest_for(make_views(1))
    manifest["views"] = [entry]
    decoded = []
    monkeypatch.setattr(arc, "decode_view_png", lambda *a, **k: decoded.append(1))
    members = with_manifest(manifest, [(member("views/view_000.png"), png)])
    refused(write_zip(tmp_path / "a.yolz", members), "header declares 100000x100000")
    assert decoded == []


def test_refuses_view_whose_size_differs_from_the_manifest(tmp_path):
    members = good_members()
    manifest = json.loads(members[0][1])
    manifest["views"][0]["width"] += 1
    members[0] = (members[0][0], json.dumps(manifest).encode())
    refused(write_zip(tmp_path / "a.yolz", members), "manifest.json says")


def test_refuses_view_that_is_not_a_png(tmp_path):
    data = b"GIF89a" + bytes(100)
    manifest, _ = manifest_for(make_views(1))
    manifest["views"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    members = with_manifest(manifest, [(member("views/view_000.png"), data)])
    refused(write_zip(tmp_path / "a.yolz", members), "views/view_000.png", "neither png")


def test_refuses_corrupt_member_data(tmp_path):
    data = bytearray(zip_bytes(good_members()))
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo("views/view_000.png")  # stored: flip a byte of its data (CRC error)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 40] ^= 0xFF
    path = tmp_path / "a.yolz"
    path.write_bytes(bytes(data))
    refused(path, "'views/view_000.png' cannot be read", "CRC")


# ------------------------------------------------------------------------------------------
# not an archive at all
def test_refuses_what_is_not_a_zip(tmp_path):
    path = tmp_path / "a.yolz"
    path.write_bytes(os.urandom(2000))
    refused(path, "not a zip archive")


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_refuses_truncated_zip(tmp_path, keep):
    data = zip_bytes(good_members(make_views(2)))
    path = tmp_path / "a.yolz"
    path.write_bytes(data[:int(len(data) * keep)])
    refused(path, "zip archive")


def test_refuses_zip_with_bytes_cut_from_the_middle(tmp_path):
    data = zip_bytes(good_members(make_views(2)))
    path = tmp_path / "a.yolz"
    path.write_bytes(data[:200] + data[300:])  # the directory is intact, the offsets are not
    refused(path, "corrupt")


def test_refuses_alpha_flag_that_differs_from_the_png(tmp_path):
    members = good_members()
    manifest = json.loads(members[0][1])
    manifest["views"][0]["alpha"] = True  # the PNG is RGB
    members[0] = (members[0][0], json.dumps(manifest).encode())
    refused(write_zip(tmp_path / "a.yolz", members), "alpha channel does not match")


def test_missing_file_is_an_archive_error(tmp_path):
    refused(tmp_path / "none.yolz", "cannot read")


def test_negative_views_round_trip_and_version_1_archives_still_read(tmp_path):
    views, negatives = make_views(2), make_views(1)
    path = write_archive(tmp_path / "a.yolz", "mug", views, "m", "c", negatives=negatives)
    back = arc.read_archive(path)
    assert len(back.views) == 2 and len(back.negatives) == 1
    np.testing.assert_array_equal(back.negatives[0], negatives[0])
    with zipfile.ZipFile(path) as zf:
        assert "negatives/negative_000.png" in zf.namelist()
    manifest, pngs = manifest_for(make_views(1))  # an archive written before negatives
    manifest["format"] = "yolz-object/1"
    members = with_manifest(manifest, [(member("views/view_000.png"), pngs[0])])
    old = arc.read_archive(write_zip(tmp_path / "old.yolz", members))
    assert len(old.views) == 1 and old.negatives == []
    with pytest.raises(arc.ArchiveError, match="an archive holds 0..4 negative views"):
        write_archive(tmp_path / "b.yolz", "mug", views, negatives=make_views(1) * 5)
