"""The node's reliability over real DDS: frames delivered on one host, service callback groups,
request limits, per-reason log throttling, refused removes logged. The node is its own process,
as in test_node.py; the short soak is tests/system/test_soak.py."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import Image

from node_harness import NS
from yolz_ros.runtime.limits import MAX_REQUEST_BYTES, MAX_VIEW_BYTES
from yolz_ros.runtime.log_throttle import ReasonThrottle, reason_key
from yolz_ros.srv import ListObjects, RegisterObject, RemoveObject

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PROFILE = ROOT / "config" / "fastdds_same_host.xml"
# The node runs in the namespace of this run's own (node_harness.NS): another test run on this
# machine may share the ROS domain. `ros` is the shared fixture (conftest.py, node_harness.Ros).


# ------------------------------------------------------------------------------------------
# no ROS: the throttle
def test_reason_throttle_is_per_reason():
    now = [0.0]
    t = ReasonThrottle(period_s=5.0, clock=lambda: now[0])
    assert t.allow("bad frame: data has 10 bytes, expected 921600") is not None
    assert t.allow("bad frame: data has 12 bytes, expected 921600") is None  # same reason
    assert t.allow("bad frame: unsupported encoding 'yuv422'") is not None  # another reason
    assert t.allow("bad frame: unsupported encoding 'nv12'") is None
    now[0] = 5.1
    line = t.allow("bad frame: data has 7 bytes, expected 921600")
    assert line is not None and "1 more like this" in line
    assert reason_key("a 10x20 b 'x'") == reason_key("a 3x4 b 'yy'")


def test_reason_throttle_is_bounded():
    t = ReasonThrottle(period_s=100.0, max_reasons=4)
    for word in "abcdefgh":
        assert t.allow(f"reason {word * 3}") is not None
    assert len(t._seen) == 4


# ------------------------------------------------------------------------------------------
# 640x480 best-effort frames between two processes on one host (they need the same-host profile)
def run_probe(*args, timeout=90):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "dds_probe.py"), *args],
                         capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_host_profile_delivers_640x480_best_effort_frames():
    """With FastDDS's defaults ~98% of these frames are lost (they do not fit its 512 KiB
    shared-memory segment and their UDP fragments overflow the socket buffer); the shipped
    profile (config/fastdds_same_host.xml, a 32 MiB segment) must deliver them."""
    assert PROFILE.is_file()
    result = run_probe("--seconds", "6", "--rate", "30", "--size", "640x480",
                       "--profile", str(PROFILE))
    assert result["sent"] >= 100
    assert result["delivered_fraction"] >= 0.9, result


# ------------------------------------------------------------------------------------------
# the node
@pytest.fixture(scope="module")
def node(ros, tmp_path_factory):
    from tiny_model import make_tiny_model
    directory = tmp_path_factory.mktemp("reliability")
    model = make_tiny_model(directory / "model")
    log_path = directory / "node.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "yolz_ros.ros.node", "--ros-args",
             "-p", f"model_dir:={model}", "-p", f"library_dir:={directory / 'library'}",
             "-p", "backend:=onnxruntime", "-p", "device:=cpu", "-p", "precision:=fp32",
             "-r", f"__ns:={NS}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy())
    proc.log_path = log_path
    proc.library = directory / "library"
    ros.call(ListObjects, NS + "/yolz/list_objects", ListObjects.Request(), idempotent=True)
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, log_path.read_text()[-3000:]


def node_log(proc, wait_for="", timeout=8.0):
    end = time.monotonic() + timeout
    while True:
        text = Path(proc.log_path).read_text()
        if wait_for in text or time.monotonic() > end:
            return text
        time.sleep(0.1)


def image_msg(pixels, encoding="rgb8"):
    pixels = np.ascontiguousarray(pixels)
    return Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                 is_bigendian=0, step=pixels.strides[0], data=pixels.tobytes())


def noise_views(n, side, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    enc = "rgb8" if channels == 3 else "rgba8"
    return [image_msg(rng.integers(0, 256, (side, side, channels), dtype=np.uint8), enc)
            for _ in range(n)]


def test_list_does_not_wait_behind_register(ros, node):
    """A registration that takes seconds (noise views: slow PNG encoding) must not hold up a
    listing: list runs in its own callback group and reads the library without its lock."""
    request = RegisterObject.Request(name="slow", views=noise_views(20, 1000, seed=1))
    assert sum(len(v.data) for v in request.views) < MAX_REQUEST_BYTES
    register_future = ros.client(RegisterObject, NS + "/yolz/register_object").call_async(request)
    lister = ros.client(ListObjects, NS + "/yolz/list_objects")
    t0 = time.monotonic()
    objects = node.library / "objects"

    def writing():  # the node is inside the registration: its temporary folder is on disk
        return objects.is_dir() and any(p.name.startswith(".tmp-") for p in objects.iterdir())
    ros.spin_until(lambda: writing() or register_future.done(), 60.0)
    assert not register_future.done(), "registration too fast to test the callback groups"
    list_future = lister.call_async(ListObjects.Request())
    assert ros.spin_until(lambda: list_future.done() or register_future.done(), 60.0)
    list_first = list_future.done() and not register_future.done()
    assert ros.spin_until(register_future.done, 60.0)
    assert register_future.result().success, register_future.result().message
    assert list_first, ("list answered only after the registration finished "
                        f"({time.monotonic() - t0:.2f} s)")
    assert "slow" not in list_future.result().names  # the state before the registration


def test_request_byte_limits(ros, node):
    one = noise_views(1, 2100, seed=2, channels=4)  # 17.6 MB > MAX_VIEW_BYTES
    assert len(one[0].data) > MAX_VIEW_BYTES
    r = ros.call(RegisterObject, NS + "/yolz/register_object",
                 RegisterObject.Request(name="big_view", views=one))
    assert not r.success and "too large" in r.message and "view 0" in r.message
    many = noise_views(6, 1900, seed=3, channels=4)  # 6 x 14.4 MB = 86.6 MB > 64 MiB
    assert all(len(v.data) <= MAX_VIEW_BYTES for v in many)
    r = ros.call(RegisterObject, NS + "/yolz/register_object",
                 RegisterObject.Request(name="big_request", views=many))
    assert not r.success and "per request" in r.message, r.message
    names = ros.call(ListObjects, NS + "/yolz/list_objects", ListObjects.Request(),
                     idempotent=True).names
    assert "big_view" not in names and "big_request" not in names


def test_refused_remove_is_logged(ros, node):
    r = ros.call(RemoveObject, NS + "/yolz/remove_object", RemoveObject.Request(name="teapot"))
    assert not r.success
    assert "remove_object 'teapot' refused" in node_log(node, "remove_object 'teapot' refused")


def test_rejected_frames_are_throttled_per_reason(ros, node):
    """Two kinds of bad frames, interleaved at 20 Hz for 2 s: both reasons reach the log (one
    shared 5 s throttle let only the first through)."""
    assert ros.spin_until(lambda: ros.frames.get_subscription_count() > 0, 10.0)
    wrong_encoding = Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128))
    short = Image(height=16, width=16, encoding="rgb8", step=48, data=bytes(10))
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        ros.frames.publish(wrong_encoding)
        ros.spin_until(lambda: False, 0.025)
        ros.frames.publish(short)
        ros.spin_until(lambda: False, 0.025)
    text = node_log(node, "data has 10 bytes")
    assert "unsupported encoding 'yuv422'" in text and "data has 10 bytes" in text, text[-2000:]
    lines = [ln for ln in text.splitlines() if "frame skipped" in ln]
    assert len(lines) <= 4, lines  # throttled: ~40 bad frames of each kind, one line each


def test_profile_variable_follows_the_distro():
    from yolz_ros.ros.dds import current_profile, profile_var, set_profile
    assert profile_var("jazzy") == profile_var("humble") == "FASTRTPS_DEFAULT_PROFILES_FILE"
    assert profile_var("kilted") == profile_var("") == "FASTDDS_DEFAULT_PROFILES_FILE"
    env = {"ROS_DISTRO": "jazzy", "FASTDDS_DEFAULT_PROFILES_FILE": "/old.xml"}
    set_profile(env, PROFILE)
    assert env == {"ROS_DISTRO": "jazzy", "FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE)}
    assert current_profile(env) == str(PROFILE)
    set_profile(env, None)
    assert current_profile(env) == ""
