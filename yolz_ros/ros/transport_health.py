"""Transport health of one camera, from header stamps alone: the share of frames lost between
the camera and the node, how late colour and depth images arrive, and what to do about it.

Plain Python (no rclpy): the node's receive callbacks record (header stamp, arrival time) of
every sound frame; /diagnostics asks for an :class:`Assessment` once per second.

- The camera's period: the longest period of which (nearly) as many stamp deltas are whole
  multiples as of any candidate (``_period``): with loss, deltas are multiples of the period;
  a camera that slows down (auto exposure at 15 Hz) has a new period, not loss; a publisher
  that catches up after a late frame sends a few frames ms apart, which are no period. From the
  window's deltas, or the last HISTORY_S's when the window holds fewer than MIN_WINDOW_DELTAS.
- Loss over the window: expected = span of the stamps / period + 1, received = the frames that
  arrived; judged only with at least MIN_EXPECTED frames expected.
- A stamp that goes back, or jumps by more than JUMP_S: the camera restarted (or a bag looped);
  the window starts again. Stamps of 0 (unstamped frames) and repeated stamps are not counted.
- A rate the user states (the node's camera_rate_hz) replaces the stamps' period: expected =
  rate x the window's span of arrival time (from the stream's first frame), received = the
  frames that arrived in it, restarts or not. Stamps alone cannot judge loss so heavy (~98%:
  a frame every second or two at 30 Hz) that a window holds too few frames to show the period
  and its gaps look like restarts, nor a camera that went silent; a stated rate can.
- Lateness: arrival time (wall clock) minus header stamp, judged only when the two clocks are
  comparable (|lateness| < CLOCK_COMPARABLE_S: same host, or hosts in sync; not sim time).
  Depth: how much later depth arrives than colour (the difference of their median lateness:
  a clock offset cancels), and the newest depth stamp minus the colour stamp at each colour
  arrival (what the stamp matching sees).

Measured (ENVIRONMENT.md, "DDS on one host"): FastDDS's defaults in the camera's process lose
8-92% of 640x480 rgb8 frames at 30 Hz and re-send colour and depth fragments ~3 s late; the
same-host profile (config/fastdds_same_host.xml) in the camera's process fixes it.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from yolz_ros.ros.dds import PROFILE_VARS, current_profile

WINDOW_S = 5.0  # loss and lateness over the frames that arrived in the last WINDOW_S seconds
LOSS_WARN = 0.2  # WARN above this share of frames lost ...
MIN_EXPECTED = 30  # ... with at least this many frames expected in the window
JUMP_S = 2.0  # a stamp this far past the previous one, or before it: a restart
FIT_TOL = 0.25  # a stamp delta within this share of a period of a whole multiple fits it
FIT_SHARE = 0.8  # the period: the longest candidate that this share of the best one's fits
REFINE_STEPS = 4  # the period is refined on the deltas of up to this many periods
MIN_WINDOW_DELTAS = 8  # fewer stamp deltas in the window: the period from the history
HISTORY_S = 30.0  # stamp deltas of this long kept for the period when the window has too few
HISTORY_DELTAS = 3000  # (at most this many)
LATE_WARN_S = 0.5  # WARN when frames arrive this long after their stamp (median)
CLOCK_COMPARABLE_S = 30.0  # |arrival - stamp| beyond this: different clocks, not judged
PROFILE_NAME = "fastdds_same_host.xml"


def profile_path() -> str:
    """Where this installation's same-host profile is (the source tree's config/, else the
    install's share/yolz_ros/config/), or a placeholder naming it."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / "yolz_ros" / "config" / PROFILE_NAME)
    for path in candidates:
        if path.is_file():
            return str(path)
    return f"<share>/yolz_ros/config/{PROFILE_NAME}"


def fix_text() -> str:
    """What to do about a lossy or late camera stream, in words."""
    own = current_profile()
    return ("start the camera driver's process with the same-host profile "
            f"({' / '.join(PROFILE_VARS)}={profile_path()}) or use compressed transport "
            f"(image_transport:=compressed); this node's process uses "
            f"{own if own else 'no profile'}")


@dataclass(frozen=True)
class StreamFigures:
    """One stream's figures over the window (None: not enough frames to say)."""
    received: int = 0
    expected: Optional[int] = None
    loss: Optional[float] = None
    period_s: Optional[float] = None
    lateness_p50_s: Optional[float] = None  # None also when the clocks are not comparable
    lateness_p95_s: Optional[float] = None
    lateness_raw_p50_s: Optional[float] = None  # whatever the clocks: for differences
    restarts: int = 0


def _fit(d: np.ndarray, period: float):
    """(share of the deltas ``d`` that are whole multiples of ``period`` within FIT_TOL of a
    period, the period refined on those of up to REFINE_STEPS periods)."""
    r = d / period
    k = np.round(r)
    fits = (k >= 1) & (np.abs(r - k) <= FIT_TOL)
    near = fits & (k <= REFINE_STEPS)
    refined = float(d[near].sum() / k[near].sum()) if near.any() else period
    return float(fits.mean()), refined


def _period(deltas) -> Optional[float]:
    """The camera's period from positive stamp deltas: the longest candidate period of which
    (nearly) as many deltas are whole multiples as of the best one. Candidates: the smallest,
    low and median deltas and their halves, thirds and quarters (with heavy loss the smallest
    delta may be several periods), each refined first. A camera at 15 Hz: 66 ms (33 ms fits
    as well, but is shorter); deltas of 3 ms between a late frame and the next (a publisher
    catching up): not the period (the others are no multiples of them)."""
    d = np.asarray(deltas, np.float64)
    d = d[d > 0]
    if d.size < 2:
        return None
    base = np.unique(np.quantile(d, (0.0, 0.05, 0.1, 0.25, 0.5)))
    best, scored = 0.0, []
    for p0 in np.unique(np.concatenate([base / k for k in (1, 2, 3, 4)])):
        _, p = _fit(d, p0)
        share, p = _fit(d, p)
        scored.append((share, p))
        best = max(best, share)
    return max(p for share, p in scored if share >= FIT_SHARE * best)


class StreamHealth:
    """The recent (arrival, stamp) pairs of one stream. Not thread-safe on its own: the
    :class:`TransportHealth` that holds it locks."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = float(window_s)
        self.samples = collections.deque()  # (arrival wall s, stamp s), stamps increasing
        self.history = collections.deque(maxlen=HISTORY_DELTAS)  # (arrival, stamp delta > 0)
        self.arrivals = collections.deque()  # arrival of every counted frame, restarts or not
        self.first_arrival: Optional[float] = None
        self.last_stamp: Optional[float] = None
        self.restarts = 0

    def record(self, stamp: float, arrival: float) -> bool:
        """Count one arrival; False when it is not counted (unstamped or a repeated stamp)."""
        if stamp <= 0.0:
            return False
        last = self.last_stamp
        if last is not None:
            delta = stamp - last
            if delta == 0.0:
                return False
            if delta < 0.0 or delta > JUMP_S:
                self.restarts += 1
                self.samples.clear()
            else:
                self.history.append((arrival, delta))
        self.last_stamp = stamp
        self.samples.append((arrival, stamp))
        self.arrivals.append(arrival)
        if self.first_arrival is None:
            self.first_arrival = arrival
        self.prune(arrival)
        return True

    def prune(self, now: float) -> None:
        while self.arrivals and self.arrivals[0] < now - self.window_s:
            self.arrivals.popleft()
        while self.samples and self.samples[0][0] < now - self.window_s:
            self.samples.popleft()
        while self.history and self.history[0][0] < now - HISTORY_S:
            self.history.popleft()

    def stated(self, now: float, rate_hz: float) -> StreamFigures:
        """Loss against a stated rate: the arrivals of the last window (or since the first
        frame, if that is shorter) against rate x that span."""
        if self.first_arrival is None:
            return StreamFigures()
        expected = int(round(rate_hz * min(self.window_s, now - self.first_arrival)))
        received = len(self.arrivals)
        loss = max(0.0, 1.0 - received / expected) if expected >= MIN_EXPECTED else None
        return StreamFigures(received=received, expected=expected, loss=loss,
                             period_s=1.0 / rate_hz, restarts=self.restarts)

    def figures(self, now: float, rate_hz: Optional[float] = None) -> StreamFigures:
        """The figures over the window ending ``now``; loss against ``rate_hz`` if given (the
        lateness is the stamps' in either case)."""
        self.prune(now)
        n = len(self.samples)
        if rate_hz:
            by_rate = self.stated(now, rate_hz)
            if n == 0:
                return by_rate
            return dataclasses.replace(self.figures(now), received=by_rate.received,
                                       expected=by_rate.expected, loss=by_rate.loss,
                                       period_s=by_rate.period_s)
        if n == 0:
            return StreamFigures(restarts=self.restarts)
        arrivals = np.fromiter((a for a, _ in self.samples), np.float64, n)
        stamps = np.fromiter((s for _, s in self.samples), np.float64, n)
        late = arrivals - stamps
        raw50 = float(np.median(late))
        p50 = p95 = None
        if abs(raw50) < CLOCK_COMPARABLE_S:
            p50, p95 = raw50, float(np.percentile(late, 95))
        period = expected = loss = None
        if n >= 2:
            deltas = np.diff(stamps)
            if deltas.size >= MIN_WINDOW_DELTAS:
                period = _period(deltas)
            elif len(self.history) >= MIN_WINDOW_DELTAS:
                period = _period([d for _, d in self.history])
            if period:
                expected = int(round((stamps[-1] - stamps[0]) / period)) + 1
                if expected >= MIN_EXPECTED:
                    loss = max(0.0, 1.0 - n / expected)
        return StreamFigures(received=n, expected=expected, loss=loss, period_s=period,
                             lateness_p50_s=p50, lateness_p95_s=p95, lateness_raw_p50_s=raw50,
                             restarts=self.restarts)


@dataclass(frozen=True)
class Assessment:
    """One camera's transport health: ``warn`` with the ``problems`` in words, and the figures
    as /diagnostics key/values."""
    warn: bool
    problems: Tuple[str, ...]
    values: Dict[str, str] = field(default_factory=dict)


def _ms(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value * 1e3:.1f}"


class TransportHealth:
    """Colour and depth arrivals of one camera (thread-safe: receive callbacks record, the
    diagnostics timer assesses). ``clock`` is the arrival clock: wall time, like stamps."""

    def __init__(self, window_s: float = WINDOW_S, clock=time.time):
        self.clock = clock
        self.colour = StreamHealth(window_s)
        self.depth = StreamHealth(window_s)
        self._offsets = collections.deque()  # (arrival, newest depth stamp - colour stamp)
        self._lock = threading.Lock()

    def colour_arrived(self, stamp: float, arrival: Optional[float] = None) -> None:
        arrival = self.clock() if arrival is None else arrival
        with self._lock:
            if self.colour.record(stamp, arrival) and self.depth.last_stamp is not None \
                    and self.depth.samples:
                self._offsets.append((arrival, self.depth.last_stamp - stamp))
            while self._offsets and self._offsets[0][0] < arrival - self.colour.window_s:
                self._offsets.popleft()

    def depth_arrived(self, stamp: float, arrival: Optional[float] = None) -> None:
        arrival = self.clock() if arrival is None else arrival
        with self._lock:
            self.depth.record(stamp, arrival)

    def assess(self, depth_timeout: Optional[float] = None,
               now: Optional[float] = None, rate_hz: Optional[float] = None) -> Assessment:
        """The figures over the window ending ``now``; ``depth_timeout`` (s) when the camera
        has depth: depth that arrives later than this after its colour frame costs the 3D;
        ``rate_hz``: the colour camera's frame rate as the user states it (else the stamps')."""
        now = self.clock() if now is None else now
        with self._lock:
            c = self.colour.figures(now, rate_hz)
            d = self.depth.figures(now) if depth_timeout is not None else None
            while self._offsets and self._offsets[0][0] < now - self.colour.window_s:
                self._offsets.popleft()
            offsets = [o for _, o in self._offsets]
        window = self.colour.window_s
        problems = []
        values = {"transport_window_s": f"{window:.0f}",
                  "frames_in_window": str(c.received),
                  "frames_expected_in_window": "n/a" if c.expected is None else str(c.expected),
                  "frames_lost_fraction": "n/a" if c.loss is None else f"{c.loss:.3f}",
                  "camera_period_ms": _ms(c.period_s),
                  "camera_period_from": "camera_rate_hz" if rate_hz else "stamps",
                  "frame_lateness_p50_ms": _ms(c.lateness_p50_s),
                  "frame_lateness_p95_ms": _ms(c.lateness_p95_s),
                  "stamp_restarts": str(c.restarts)}
        if c.loss is not None and c.loss > LOSS_WARN:
            problems.append(f"{c.loss:.0%} of the frames lost in the last {window:.0f} s "
                            f"({c.received} of ~{c.expected} at {1.0 / c.period_s:.0f} Hz)")
        if c.lateness_p50_s is not None and c.lateness_p50_s > LATE_WARN_S:
            problems.append(f"frames arrive {c.lateness_p50_s:.2f} s after their stamp "
                            "(median)")
        if d is not None:
            lag = None
            if c.lateness_raw_p50_s is not None and d.lateness_raw_p50_s is not None:
                lag = d.lateness_raw_p50_s - c.lateness_raw_p50_s
            offset = float(np.median(offsets)) if offsets else None
            values.update({
                "depth_in_window": str(d.received),
                "depth_lost_fraction": "n/a" if d.loss is None else f"{d.loss:.3f}",
                "depth_lateness_p50_ms": _ms(d.lateness_p50_s),
                "depth_later_than_colour_ms": _ms(lag),
                "depth_stamp_minus_colour_stamp_ms": _ms(offset)})
            if d.loss is not None and d.loss > LOSS_WARN:
                problems.append(f"{d.loss:.0%} of the depth images lost in the last "
                                f"{window:.0f} s ({d.received} of ~{d.expected})")
            if lag is not None and lag > max(depth_timeout, 0.0) and c.received and d.received:
                problems.append(f"depth images arrive {lag:.2f} s after the colour frames of "
                                f"the same stamp (depth_timeout {depth_timeout:.2f} s): frames "
                                "get no 3D")
            elif d.lateness_p50_s is not None and d.lateness_p50_s > LATE_WARN_S:
                problems.append(f"depth images arrive {d.lateness_p50_s:.2f} s after their "
                                "stamp (median)")
        values["transport"] = "WARN" if problems else "OK"
        return Assessment(bool(problems), tuple(problems), values)
