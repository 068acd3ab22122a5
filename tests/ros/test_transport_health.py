"""Transport health over real DDS: a camera process (yolz_ros/ros/synthetic_camera.py)
publishing 640x480 rgb8 at 30 Hz best effort, WITHOUT the same-host FastDDS profile (measured:
8-92% of the frames lost) and WITH it; the node (with the profile, as the launch file starts
it) must say so in /diagnostics: WARN with the loss and the fix when frames are lost, OK when
they arrive.

FastDDS's defaults lose frames only when the machine is short of socket buffer or CPU; where
they deliver (nearly) everything, the camera skips half its frames at random instead (a
simulated loss: the node sees it in the stamps only), so the WARN is tested either way."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from node_harness import NODE, NS, ROOT, start_node, stop_node, wait_ready
from yolz_ros.ros.dds import set_profile

PROFILE = ROOT / "config" / "fastdds_same_host.xml"
SECONDS = 12.0
WARN = DiagnosticStatus.WARN


@pytest.fixture(scope="module")
def node(ros, tiny_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("transport")
    saved = dict(os.environ)
    set_profile(os.environ, PROFILE)  # the node's own process: with the profile
    try:
        proc = start_node(tiny_model, directory / "library", directory / "node.log")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    wait_ready(ros, proc)
    samples = []

    def on_diag(msg):
        for status in msg.status:
            if status.name.endswith(f" {NODE}"):
                samples.append((time.monotonic(), status.level, status.message,
                                {kv.key: kv.value for kv in status.values}))
    sub = ros.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    proc.samples = samples
    yield proc
    ros.node.destroy_subscription(sub)
    stop_node(proc)


def run_camera(ros, node, profile, drop=0.0):
    """One camera run; (camera's report, frames the node received meanwhile, the /diagnostics
    samples of the run's steady part: a full 5 s window of frames behind each)."""
    env = dict(os.environ)
    set_profile(env, PROFILE if profile else None)
    first = len(node.samples)
    proc = subprocess.Popen([sys.executable, "-m", "yolz_ros.ros.synthetic_camera", "--topic",
                             f"{NS}/image", "--seconds", str(SECONDS), "--rate", "30",
                             "--size", "640x480", "--drop", str(drop)], env=env,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ros.spin_until(lambda: proc.poll() is not None, SECONDS + 40)
        ended = time.monotonic()
        ros.spin_for(1.2)  # the last status of the run
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads(proc.stdout.read().strip().splitlines()[-1])
    run = node.samples[first:]
    received = int(run[-1][3]["frames_received"]) - int(run[0][3]["frames_received"])
    flowing = [s for s in run if int(s[3].get("frames_in_window", "0")) > 0]
    start = flowing[0][0] if flowing else ended
    steady = [s for s in run if start + 5.5 <= s[0] <= ended]
    return report, received, steady  # no steady part: no frame reached the node


def lost(samples):
    return float(np.median([float(s[3]["frames_lost_fraction"]) for s in samples
                            if s[3]["frames_lost_fraction"] != "n/a"] or [np.nan]))


def test_lossy_camera_is_warned_with_the_fix(ros, node):
    """Without the profile in the camera's process: the node estimates the loss from the
    stamps, its status turns WARN and says what to do, and the log says it too."""
    report, received, steady = run_camera(ros, node, profile=False)
    delivered = received / max(report["sent"], 1)
    # FastDDS's defaults delivered here, or lost so much (98% and 100% seen in CI) that no 5 s
    # window holds enough frames for an estimate: simulate the loss instead
    if delivered >= 0.6 or np.isnan(lost(steady)):
        print(f"FastDDS defaults delivered {delivered:.0%} here; simulating 50% loss")
        # over the same-host profile, so that the transport itself loses nothing more
        report, received, steady = run_camera(ros, node, profile=delivered < 0.6, drop=0.5)
        assert len(steady) >= 3, len(steady)
        true_loss = report["skipped"] / (report["sent"] + report["skipped"])
        true_loss = 1 - (1 - true_loss) * received / max(report["sent"], 1)
    else:
        true_loss = 1 - delivered
    estimate = lost(steady)
    print(f"loss: true {true_loss:.2f}, estimated {estimate:.2f} (median of {len(steady)})")
    assert abs(estimate - true_loss) <= 0.2, (estimate, true_loss)
    # a window with too few frames to tell the camera's period has no estimate ("n/a"; seen at
    # 97% loss): the verdict is judged where there is one
    estimated = [s for s in steady if s[3]["frames_lost_fraction"] != "n/a"]
    warned = [s for s in estimated if s[1] == WARN]
    assert estimated and len(warned) >= 0.8 * len(estimated), \
        [(s[1], s[3]["frames_lost_fraction"]) for s in steady]
    message = warned[-1][2]
    assert "transport: " in message and "of the frames lost" in message
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in message and "fastdds_same_host.xml" in message
    assert warned[-1][3]["transport"] == "WARN"
    log = Path(node.log_path).read_text()
    assert "of the frames lost" in log and "Fix: start the camera driver's process with the " \
        "same-host profile" in log


def test_camera_on_the_profile_is_ok(ros, node):
    report, received, steady = run_camera(ros, node, profile=True)
    assert len(steady) >= 3, len(steady)
    delivered = received / max(report["sent"], 1)
    estimate = lost(steady)
    print(f"with the profile: delivered {delivered:.2f}, estimated loss {estimate:.2f}")
    assert delivered >= 0.8, (report, received)
    assert abs(estimate - (1 - delivered)) <= 0.15, (estimate, delivered)
    ok = [s for s in steady if s[3]["transport"] == "OK"]
    assert len(ok) >= 0.8 * len(steady), [(s[1], s[2]) for s in steady]
    assert all(float(s[3]["camera_period_ms"]) == pytest.approx(33.3, abs=2) for s in ok)
