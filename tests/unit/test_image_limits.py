"""A decompression bomb must be refused from its header, before decoding:
header sizes and stored views, no ROS (camera frames and the register CLI's view files:
tests/ros/test_image_msgs.py)."""
import hashlib
import json

import cv2
import numpy as np
import pytest

from tools.image_bombs import jpeg_with_size, png_bomb
from yolz_ros.runtime.image import ImageError
from yolz_ros.runtime.library import ObjectLibrary


@pytest.fixture(scope="module")
def bomb():
    return png_bomb(20000, 20000)


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


def test_png_bomb_header_refused_without_decoding(bomb, monkeypatch):
    from yolz_ros.runtime.image import check_encoded_size
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: calls.append(a))
    assert len(bomb) < 2_000_000
    with pytest.raises(ImageError, match="20000x20000.*before decoding"):
        check_encoded_size(bomb, 50_000_000)
    assert calls == []


def test_check_encoded_size_limits():
    from yolz_ros.runtime.image import check_encoded_size
    ok, buf = cv2.imencode(".png", np.zeros((10, 20), np.uint8))
    assert check_encoded_size(buf, 200) == (20, 10, "png")
    with pytest.raises(ImageError, match="over the limit"):
        check_encoded_size(buf, 199)
    with pytest.raises(ImageError, match="at most 16"):
        check_encoded_size(buf, 10_000, max_side=16)


def test_stored_view_bomb_refused_before_decoding(tmp_path, bomb, monkeypatch):
    lib = ObjectLibrary(tmp_path, "m@1").load()
    lib.add("mug", [np.zeros((16, 16, 3), np.uint8)], np.ones(8, np.float32) / 8 ** 0.5)
    entry = json.loads((tmp_path / "library.json").read_text())["objects"][0]
    folder = tmp_path / "objects" / entry["folder"]
    (folder / "view_000.png").write_bytes(bomb)
    meta = json.loads((folder / "meta.json").read_text())
    # its checksum matches: the size limit, not the checksum, must be what refuses it
    meta["view_sha256"] = [hashlib.sha256(bomb).hexdigest()]
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


