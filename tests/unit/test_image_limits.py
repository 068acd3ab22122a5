"""Issue 12, bug 3: a decompression bomb must be refused from its header, before decoding
(camera frames, stored views, view files of the register CLI). No ROS."""
import json
import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from yolz_ros.runtime import image as image_module
from yolz_ros.runtime.image import ImageError
from yolz_ros.ros.image_msgs import compressed_msg_to_rgb
from yolz_ros.runtime.library import ObjectLibrary


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(width=20000, height=20000, color_type=2) -> bytes:
    """A valid PNG of width x height black pixels (RGB: 1.2 GB decoded), ~1 MB on disk."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + width * channels)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def jpeg_with_size(width, height) -> bytes:
    """A real small JPEG whose frame header (SOF0) is patched to declare width x height."""
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    i = 2
    while data[i + 1] != 0xC0:
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture(scope="module")
def bomb():
    return png_bomb(20000, 20000)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if anything decodes an image through cv2."""
    calls = []

    def imdecode(*args, **kwargs):
        calls.append(args)
        raise AssertionError("cv2.imdecode was called: the size must be checked first")
    monkeypatch.setattr(image_module.cv2, "imdecode", imdecode)
    monkeypatch.setattr(cv2, "imdecode", imdecode)
    monkeypatch.setattr(cv2, "imread", imdecode)
    return calls


def test_header_sizes():
    from yolz_ros.runtime.image import encoded_image_size
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8)
    for ext, params in ((".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])):
        ok, buf = cv2.imencode(ext, img, params)
        assert encoded_image_size(buf)[:2] == (53, 37)
        assert encoded_image_size(buf.tobytes())[:2] == (53, 37)
    assert encoded_image_size(jpeg_with_size(30000, 20000)) == (30000, 20000, "jpeg")
    for junk in (b"", b"GIF89a......", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"):
        with pytest.raises(ImageError):
            encoded_image_size(junk)


def test_compressed_png_bomb_refused_before_decoding(bomb, no_decoding):
    assert len(bomb) < 2_000_000
    msg = SimpleNamespace(format="png", data=bomb)
    with pytest.raises(ImageError, match="20000x20000.*before decoding"):
        compressed_msg_to_rgb(msg, max_pixels=50_000_000)
    assert no_decoding == []


def test_compressed_jpeg_bomb_refused_before_decoding(no_decoding):
    msg = SimpleNamespace(format="jpeg", data=jpeg_with_size(30000, 20000))
    with pytest.raises(ImageError, match="30000x20000.*before decoding"):
        compressed_msg_to_rgb(msg, max_pixels=50_000_000)
    assert no_decoding == []


def test_small_compressed_frames_still_decode():
    img = np.random.default_rng(1).integers(0, 256, (48, 64, 3), np.uint8)
    for ext in (".png", ".jpg"):
        ok, buf = cv2.imencode(ext, img)
        rgb, alpha = compressed_msg_to_rgb(SimpleNamespace(format=ext[1:], data=buf.tobytes()))
        assert rgb.shape == (48, 64, 3) and alpha is None
    with pytest.raises(ImageError, match="png, jpeg"):
        ok, buf = cv2.imencode(".bmp", img)
        compressed_msg_to_rgb(SimpleNamespace(format="bmp", data=buf.tobytes()))


def test_check_encoded_size_limits():
    from yolz_ros.runtime.image import check_encoded_size
    ok, buf = cv2.imencode(".png", np.zeros((10, 20), np.uint8))
    assert check_encoded_size(buf, 200) == (20, 10, "png")
    with pytest.raises(ImageError, match="over the limit"):
        check_encoded_size(buf, 199)
    with pytest.raises(ImageError, match="at most 16"):
        check_encoded_size(buf, 10_000, max_side=16)


def test_png_problem_finds_corruption():
    from yolz_ros.runtime.image import png_problem
    ok, buf = cv2.imencode(".png", np.random.default_rng(2).integers(0, 256, (20, 20, 3),
                                                                       np.uint8))
    data = buf.tobytes()
    assert png_problem(data) is None
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    assert "CRC" in png_problem(bytes(flipped))
    assert png_problem(data[:-5]) is not None
    assert png_problem(np.random.default_rng(3).bytes(len(data))) is not None


def test_stored_view_bomb_refused_before_decoding(tmp_path, bomb, monkeypatch):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", [np.zeros((16, 16, 3), np.uint8)], np.ones(8, np.float32) / 8 ** 0.5)
    entry = json.loads((tmp_path / "library.json").read_text())["objects"][0]
    folder = tmp_path / "objects" / entry["folder"]
    (folder / "view_000.png").write_bytes(bomb)
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("view_sha256", None)  # as written by older code: the bomb is a valid PNG
    (folder / "meta.json").write_text(json.dumps(meta))
    again = ObjectLibrary(tmp_path, "m@1").load()
    assert again.names() == ["mug"]
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match="view_000.png.*20000x20000"):
        again.views("mug")
    assert calls == []
    # re-embedding (model change) meets the same refusal: the object is skipped, not decoded
    third = ObjectLibrary(tmp_path, "m@2").load(embed_fn=lambda vs: pytest.fail("embedded"))
    assert third.names() == [] and "20000x20000" in third.skipped_reasons["mug"]
    assert calls == []


def test_register_cli_refuses_a_bomb_file_before_decoding(tmp_path, bomb, no_decoding):
    from yolz_ros.cli.register import read_view
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(ValueError, match="20000x20000"):
        read_view(str(path))
    assert no_decoding == []
