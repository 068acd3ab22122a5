"""Transport health from header stamps (yolz_ros.ros.transport_health) on synthetic stamps, and
its place in /diagnostics; plain, no DDS (tests/ros/test_transport_health.py runs it over DDS)."""
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from yolz_ros.ros import transport_health as th
from yolz_ros.ros.cameras import Camera
from yolz_ros.ros.diagnostics import Diagnostics
from yolz_ros.ros.params import Settings
from yolz_ros.ros.pipeline import Pipeline

T0 = 1_700_000_000.0  # a wall-clock stamp
RATE = 30.0


def feed(health, seconds, keep=1.0, seed=0, t0=T0, rate=RATE, latency=0.005, jitter=0.0,
         depth_delay=None):
    """Frames of a ``rate`` Hz camera for ``seconds``; each arrives with probability ``keep``,
    ``latency`` s after its stamp (+ uniform ``jitter`` on the stamp); with ``depth_delay``, a
    depth image of the same stamp arrives that long after it. Returns the last arrival."""
    rng = np.random.default_rng(seed)
    events = []  # (arrival, kind, stamp), recorded in the order they arrive
    for i in range(int(seconds * rate)):
        stamp = t0 + i / rate + rng.uniform(-jitter, jitter)
        if rng.random() >= keep:
            continue
        events.append((stamp + latency, 0, stamp))
        if depth_delay is not None:
            events.append((stamp + depth_delay, 1, stamp))
    events.sort()
    for arrival, kind, stamp in events:
        if kind == 0:
            health.colour_arrived(stamp, arrival)
        else:
            health.depth_arrived(stamp, arrival)
    return events[-1][0]


def values(a):
    return {k: (None if v == "n/a" else float(v)) for k, v in a.values.items()
            if k not in ("transport", "camera_period_from")}


def test_no_loss():
    h = th.TransportHealth()
    now = feed(h, 10.0)
    a = h.assess(now=now)
    v = values(a)
    assert not a.warn and a.problems == () and a.values["transport"] == "OK"
    assert v["frames_lost_fraction"] == pytest.approx(0.0, abs=0.01)
    assert v["camera_period_ms"] == pytest.approx(33.3, abs=0.2)
    assert v["frames_in_window"] == pytest.approx(150, abs=1)
    assert v["frame_lateness_p50_ms"] == pytest.approx(5, abs=1)


@pytest.mark.parametrize("keep", [0.5, 0.08])
def test_heavy_loss_is_estimated_and_warned(keep):
    """50% lost, and 92% (measured with FastDDS's defaults): few consecutive frames arrive, so
    the period comes from the longer history."""
    h = th.TransportHealth()
    now = feed(h, 30.0, keep=keep, seed=1)
    a = h.assess(now=now)
    v = values(a)
    assert a.warn and v["frames_lost_fraction"] == pytest.approx(1 - keep, abs=0.08)
    assert v["camera_period_ms"] == pytest.approx(33.3, abs=1.0)
    assert "of the frames lost in the last 5 s" in a.problems[0]


def test_jitter():
    h = th.TransportHealth()
    now = feed(h, 10.0, jitter=0.006)  # +-6 ms on a 33 ms period
    a = h.assess(now=now)
    assert not a.warn and values(a)["frames_lost_fraction"] < 0.05
    h = th.TransportHealth()
    now = feed(h, 20.0, keep=0.7, jitter=0.006, seed=2)
    a = h.assess(now=now)
    assert a.warn and values(a)["frames_lost_fraction"] == pytest.approx(0.3, abs=0.08)


def test_a_publisher_catching_up_is_not_loss():
    """A camera process short of CPU stamps at publishing: after a late frame it publishes the
    next ones a few ms apart (seen over DDS on this 2-core machine)."""
    for keep in (1.0, 0.5):
        rng = np.random.default_rng(5)
        h = th.TransportHealth()
        t = next_t = T0
        for _ in range(900):
            late = rng.exponential(0.03) if rng.random() < 0.2 else rng.uniform(0, 0.003)
            t = max(t + 0.002, next_t + late)
            next_t += 1 / RATE
            if rng.random() < keep:
                h.colour_arrived(t, t + 0.005)
        v = values(h.assess(now=t + 0.005))
        assert v["frames_lost_fraction"] == pytest.approx(1 - keep, abs=0.08), keep
        assert v["camera_period_ms"] == pytest.approx(33.3, abs=1.5)


def test_a_restart_or_a_stamp_jump_starts_the_window_again():
    h = th.TransportHealth()
    now = feed(h, 5.0)
    # the camera restarts: its stamps start 100 s earlier (another clock) ...
    now = feed(h, 0.5, t0=now - 100.0)
    a = h.assess(now=now)
    assert not a.warn and a.values["stamp_restarts"] == "1"
    # ... the window holds the new run only (too short to judge) ...
    assert a.values["frames_lost_fraction"] == "n/a" and values(a)["frames_in_window"] == 15
    # ... and a 10 s jump forward (a pause, a bag loop) is one too; no loss claimed
    now = feed(h, 3.0, t0=now + 10.0)
    a = h.assess(now=now)
    assert not a.warn and a.values["stamp_restarts"] == "2"
    assert values(a)["frames_lost_fraction"] == pytest.approx(0.0, abs=0.02)


def test_a_slower_camera_is_not_loss():
    """Auto exposure drops a camera from 30 to 15 Hz: a new period, not 50% lost."""
    h = th.TransportHealth()
    now = feed(h, 10.0)
    now = feed(h, 6.0, t0=now + 1 / 15, rate=15.0)
    a = h.assess(now=now)
    assert not a.warn and values(a)["camera_period_ms"] == pytest.approx(66.7, abs=1)


def test_late_frames_and_late_depth():
    """FastDDS's defaults re-sent colour and depth fragments ~3 s late."""
    h = th.TransportHealth()
    now = feed(h, 10.0, latency=3.0)
    a = h.assess(now=now)
    assert a.warn and "frames arrive 3.00 s after their stamp" in a.problems[0]
    # depth 3 s after colour of the same stamp: no 3D (depth_timeout 0.1 s)
    h = th.TransportHealth()
    now = feed(h, 10.0, depth_delay=3.0)
    a = h.assess(depth_timeout=0.1, now=now)
    v = values(a)
    assert a.warn and any("depth images arrive 2.99 s after the colour frames" in p
                          for p in a.problems), a.problems
    assert v["depth_later_than_colour_ms"] == pytest.approx(2995, abs=2)
    assert v["depth_stamp_minus_colour_stamp_ms"] == pytest.approx(-3000, abs=40)
    assert v["depth_lost_fraction"] == pytest.approx(0.0, abs=0.01)
    # depth with its colour frame: fine, and without depth_timeout depth is not judged
    h = th.TransportHealth()
    now = feed(h, 10.0, depth_delay=0.01)
    assert not h.assess(depth_timeout=0.1, now=now).warn
    assert "depth_in_window" not in h.assess(now=now).values


def test_unstamped_frames_and_other_clocks_are_not_judged():
    h = th.TransportHealth()
    for i in range(100):
        h.colour_arrived(0.0, T0 + i / 30)  # unstamped: not counted
    a = h.assess(now=T0 + 4)
    assert not a.warn and a.values["frames_in_window"] == "0"
    # stamps of another clock (sim time from a bag): loss yes, lateness not
    h = th.TransportHealth()
    for i in range(150):
        h.colour_arrived(100.0 + i / 30, T0 + i / 30)
    a = h.assess(now=T0 + 5)
    assert not a.warn and a.values["frame_lateness_p50_ms"] == "n/a"
    assert values(a)["frames_lost_fraction"] == pytest.approx(0.0, abs=0.01)
    # nothing for WINDOW_S: the window is empty, no claim
    assert h.assess(now=T0 + 30).values["frames_lost_fraction"] == "n/a"


def test_a_stated_rate_judges_what_the_stamps_cannot():
    """98% lost (a frame every 1.7 s at 30 Hz, seen in CI with FastDDS's defaults): the stamps
    cannot say (too few frames, gaps > JUMP_S look like restarts); against camera_rate_hz they
    can. A camera gone silent likewise; a healthy one stays OK either way."""
    h = th.TransportHealth()
    now = None
    for i in range(12):  # 20 s, one frame in 50
        stamp = T0 + i * 50 / RATE
        h.colour_arrived(stamp, stamp + 0.005)
        now = stamp + 0.005
    blind = h.assess(now=now)
    assert not blind.warn and blind.values["frames_lost_fraction"] == "n/a"
    a = h.assess(now=now, rate_hz=RATE)
    v = values(a)
    assert a.warn and "of the frames lost" in a.problems[0] and "at 30 Hz" in a.problems[0]
    assert v["frames_lost_fraction"] == pytest.approx(0.98, abs=0.01)
    assert v["frames_expected_in_window"] == 150 and v["camera_period_ms"] == pytest.approx(33.3)
    assert a.values["camera_period_from"] == "camera_rate_hz"
    assert blind.values["camera_period_from"] == "stamps"
    # silent for 6 s: 100% lost (the stamps alone make no claim on an empty window)
    assert not h.assess(now=now + 6).warn
    silent = h.assess(now=now + 6, rate_hz=RATE)
    assert silent.warn and values(silent)["frames_lost_fraction"] == 1.0
    # a healthy 30 Hz camera, stated or not, and one that never sent a frame: no claim
    h = th.TransportHealth()
    now = feed(h, 10.0)
    a = h.assess(now=now, rate_hz=RATE)
    assert not a.warn and values(a)["frames_lost_fraction"] == pytest.approx(0.0, abs=0.01)
    assert values(a)["frame_lateness_p50_ms"] == pytest.approx(5, abs=1)  # still the stamps'
    assert not th.TransportHealth().assess(now=now, rate_hz=RATE).warn
    # the first seconds: expected over the time since the first frame, not a whole window
    h = th.TransportHealth()
    now = feed(h, 2.0, keep=0.5)
    assert values(h.assess(now=now, rate_hz=RATE))["frames_lost_fraction"] == \
        pytest.approx(0.5, abs=0.1)


def test_diagnostics_judge_against_the_stated_rate():
    cams = [Camera("image", "image", resolved="/cam/image")]
    now = feed(cams[0].health, 10.0, keep=0.02, seed=1)
    cams[0].health.clock = lambda: now
    stated = Settings(camera_rate_hz=RATE)
    pipe = Pipeline(cams, detector=None, max_image_pixels=10, state=lambda: (None, stated),
                    on_error=lambda text: None)
    a = Diagnostics("yolz_ros: /yolz").transport(pipe, active=True)["/cam/image"]
    assert a.warn and a.values["camera_period_from"] == "camera_rate_hz"


def test_diagnostics_warn_and_log_with_the_fix():
    cams = [Camera("image", "image", resolved="/cam/image")]
    now = feed(cams[0].health, 10.0, keep=0.3, seed=4)
    cams[0].health.clock = lambda: now
    pipe = Pipeline(cams, detector=None, max_image_pixels=10, state=lambda: (None, Settings()),
                    on_error=lambda text: None)
    logged = []
    diag = Diagnostics("yolz_ros: /yolz", warn=logged.append)
    msg = diag.build(state="active", pipeline=pipe, detector=None, model_dir="", library=None,
                     names=["a"], stamp=Time())
    (status,) = msg.status
    assert status.level == DiagnosticStatus.WARN and "transport: /cam/image: 7" in status.message
    assert "fastdds_same_host.xml" in status.message
    kv = {v.key: v.value for v in status.values}
    assert float(kv["frames_lost_fraction"]) == pytest.approx(0.7, abs=0.08)
    assert kv["transport"] == "WARN" and kv["frames_3d_skipped"] == "0"
    assert len(logged) == 1
    assert "camera /cam/image: " in logged[0] and "fastdds_same_host.xml" in logged[0]
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in logged[0] and "compressed" in logged[0]
    diag.transport(pipe, active=True)
    assert len(logged) == 1  # throttled: one line per camera per 30 s
    assert diag.transport(pipe, active=False) == {}
    # inactive (managed mode): no claim about the transport
    msg = diag.build(state="inactive", pipeline=pipe, detector=None, model_dir="",
                     library=None, names=["a"], stamp=Time())
    assert msg.status[0].level == DiagnosticStatus.OK
