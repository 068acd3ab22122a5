"""sensor_msgs/Image and CompressedImage <-> numpy (yolz_ros/ros/image_msgs.py): every encoding,
row padding and byte order, compressed frames, bad messages, and decompression bombs refused from
their header before decoding (a small file can declare a huge image). The pixel rules themselves
are runtime (tests/unit/test_runtime.py, tests/unit/test_image_limits.py)."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tools.image_bombs import jpeg_with_size, png_bomb
from yolz_ros.ros.image_msgs import compressed_msg_to_rgb, image_msg_to_array
from yolz_ros.runtime import image as image_module
from encoded_images import ALPHA, ENCODINGS, RGB, encoded
from yolz_ros.runtime.image import ImageError, to_rgb


def fake_msg(pixels, encoding, pad_bytes=0, bigendian=False):
    """A sensor_msgs/Image look-alike with `pad_bytes` of row padding."""
    h, w = pixels.shape[:2]
    if bigendian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    rows = np.hstack([rows, np.full((h, pad_bytes), 0xAB, np.uint8)])
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                           step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_converts(encoding):
    pixels, rgb, alpha = encoded(encoding)
    for got_rgb, got_alpha in (to_rgb(pixels, encoding),
                               image_msg_to_array(fake_msg(pixels, encoding)),
                               image_msg_to_array(fake_msg(pixels, encoding, pad_bytes=5))):
        assert got_rgb.dtype == np.uint8 and got_rgb.shape == (2, 3, 3)
        np.testing.assert_array_equal(got_rgb, rgb)
        if alpha is None:
            assert got_alpha is None
        else:
            np.testing.assert_array_equal(got_alpha, alpha)


def test_big_endian_mono16():
    pixels, rgb, _ = encoded("mono16")
    got, _ = image_msg_to_array(fake_msg(pixels, "mono16", pad_bytes=2, bigendian=True))
    np.testing.assert_array_equal(got, rgb)


def test_compressed_images_decode():
    ok, data = cv2.imencode(".png", RGB[..., ::-1])
    got, alpha = compressed_msg_to_rgb(SimpleNamespace(format="png", data=data.tobytes()))
    np.testing.assert_array_equal(got, RGB)
    assert alpha is None
    black = np.zeros((16, 16, 3), np.uint8)
    ok, data = cv2.imencode(".jpg", black, [cv2.IMWRITE_JPEG_QUALITY, 100])
    got, _ = compressed_msg_to_rgb(SimpleNamespace(format="jpeg", data=data.tobytes()))
    assert got.shape == (16, 16, 3) and int(got.max()) <= 2
    # only what image_transport's compressed transport sends: the size comes from a PNG or JPEG
    # header before anything is decoded, so other formats are refused by name
    ok, data = cv2.imencode(".bmp", RGB[..., ::-1])
    with pytest.raises(ImageError, match="accepted: png, jpeg"):
        compressed_msg_to_rgb(SimpleNamespace(format="bmp", data=data.tobytes()))
    ok, data = cv2.imencode(".png", np.dstack([RGB[..., ::-1], ALPHA]))
    got, alpha = compressed_msg_to_rgb(SimpleNamespace(format="png", data=data.tobytes()))
    np.testing.assert_array_equal(got, RGB)
    np.testing.assert_array_equal(alpha, ALPHA)


def test_rgb_to_image_msg_round_trip():
    from yolz_ros.ros.image_msgs import rgb_to_image_msg

    msg = rgb_to_image_msg(RGB)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 3, 2, 9)
    got, alpha = image_msg_to_array(msg)
    np.testing.assert_array_equal(got, RGB)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_array_to_image_msg_is_the_inverse(encoding):
    """The one array -> Image constructor (tests, soak, camera_player use it) round-trips every
    encoding, big-endian arrays included."""
    from yolz_ros.ros.image_msgs import array_to_image_msg

    pixels, rgb, alpha = encoded(encoding)
    for array in (pixels, pixels.astype(pixels.dtype.newbyteorder(">"))):
        msg = array_to_image_msg(array, encoding)
        assert msg.step == pixels.shape[1] * pixels[0, 0].nbytes  # no row padding
        got_rgb, got_alpha = image_msg_to_array(msg)
        np.testing.assert_array_equal(got_rgb, rgb)
        assert (got_alpha is None) == (alpha is None)
    empty = array_to_image_msg(np.zeros((0, 0, 3), np.uint8), "rgb8")
    assert (empty.height, empty.width, empty.step, len(empty.data)) == (0, 0, 0, 0)


@pytest.mark.parametrize("make,match", [
    (lambda: fake_msg(RGB, "yuv422"), "unsupported encoding"),
    (lambda: SimpleNamespace(height=0, width=3, encoding="rgb8", is_bigendian=0, step=9,
                             data=b""), "empty"),
    (lambda: SimpleNamespace(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
                             data=b"\0" * 17), "expected step"),
    (lambda: SimpleNamespace(height=2, width=3, encoding="rgb8", is_bigendian=0, step=8,
                             data=b"\0" * 16), "smaller than one row"),
])
def test_bad_image_messages_raise(make, match):
    with pytest.raises(ImageError, match=match):
        image_msg_to_array(make())


def test_bad_messages_and_compressed_data_raise():
    with pytest.raises(ImageError, match="over the limit"):
        image_msg_to_array(fake_msg(RGB, "rgb8"), max_pixels=5)
    with pytest.raises(ImageError, match="corrupt jpeg header"):
        compressed_msg_to_rgb(SimpleNamespace(format="jpeg", data=b"\xff\xd8 not a jpeg"))
    ok, png = cv2.imencode(".png", RGB[..., ::-1])  # a sound header, a truncated body
    with pytest.raises(ImageError, match="cannot decode"):
        compressed_msg_to_rgb(SimpleNamespace(format="png", data=png.tobytes()[:40]))
    with pytest.raises(ImageError, match="no data"):
        compressed_msg_to_rgb(SimpleNamespace(format="jpeg", data=b""))


# ------------------------------------------------------------------------------------------
# decompression bombs: refused from the header, before a byte is decoded
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


def test_register_cli_refuses_a_bomb_file_before_decoding(tmp_path, bomb, no_decoding):
    from yolz_ros.cli.register import read_view
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(ValueError, match="20000x20000"):
        read_view(str(path))
    assert no_decoding == []
