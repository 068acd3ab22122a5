"""The node's /diagnostics status, from the pipeline's counters (plain; the node publishes it).

Transport health (yolz_ros.ros.transport_health, docs/transport_health.md): each camera's frame
loss and lateness, estimated from header stamps. A lossy or late camera turns its status (and the
node's) to WARN and writes a log line (at most one per camera per TRANSPORT_LOG_S) that says
what to do.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from yolz_ros.ros.transport_health import fix_text
from yolz_ros.runtime.log_throttle import ReasonThrottle

TRANSPORT_LOG_S = 30.0


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Diagnostics:
    """Builds one DiagnosticArray per call; remembers the previous call for the frame rate."""

    def __init__(self, name: str, warn: Optional[Callable[[str], None]] = None):
        self.name = name
        self.warn = warn  # the log line of a lossy or late camera (throttled here)
        self._transport_logs = {}  # camera -> ReasonThrottle (names differ in digits only)
        self._prev = (time.monotonic(), 0)

    def transport(self, pipeline, active: bool):
        """{camera: Assessment} of the running pipeline's cameras ({} when not active); logs
        the lossy or late ones (throttled)."""
        if pipeline is None or not active:
            return {}
        try:
            settings = pipeline.state()[1]
            depth_timeout = float(settings.depth_timeout)
            rate_hz = float(settings.camera_rate_hz) or None
        except Exception:  # noqa: BLE001 - no settings: the defaults
            depth_timeout, rate_hz = 0.1, None
        out = {}
        for cam in pipeline.cameras:
            a = cam.health.assess(depth_timeout if cam.depth is not None else None,
                                  rate_hz=rate_hz)
            out[cam.resolved or cam.topic] = a
            if a.warn and self.warn is not None:
                throttle = self._transport_logs.setdefault(
                    cam.key, ReasonThrottle(period_s=TRANSPORT_LOG_S))
                line = throttle.allow(
                    f"camera {cam.resolved or cam.topic}: " + "; ".join(a.problems)
                    + f". Fix: {fix_text()}")
                if line is not None:
                    self.warn(line)
        return out

    def build(self, *, state: str, pipeline, detector, model_dir, library, names, stamp):
        """``state``: 'active', 'inactive' (managed mode, not subscribed) or 'unconfigured'."""
        now = time.monotonic()
        cameras = pipeline.cameras if pipeline is not None else []
        if pipeline is not None:
            with pipeline.stats.lock:
                processed = sum(c.processed for c in cameras)
                rejected = sum(c.rejected for c in cameras)
                overlays = sum(c.overlays for c in cameras)
                located = sum(c.located for c in cameras)
                unlocated = sum(c.unlocated for c in cameras)
                skipped_3d = sum(c.skipped_3d for c in cameras)
                merged_3d = sum(c.merged_3d for c in cameras)
                lat = sorted(pipeline.stats.latencies)
                inf = sorted(pipeline.stats.inference)
                passes = list(pipeline.stats.passes)
                errors, last_error = pipeline.stats.errors, pipeline.stats.last_error
            received, dropped = pipeline.mailbox.counts()
        else:
            processed = rejected = overlays = errors = received = dropped = 0
            located = unlocated = skipped_3d = merged_3d = 0
            lat, inf, passes, last_error = [], [], [], ""
        t_prev, processed_prev = self._prev
        rate = (processed - processed_prev) / max(now - t_prev, 1e-6)
        self._prev = (now, processed)

        model_id = detector.model_id if detector is not None else ""
        status = DiagnosticStatus(name=self.name, hardware_id=model_id)
        if state != "active":
            status.level, status.message = DiagnosticStatus.OK, f"{state}: not processing frames"
        elif received == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images received yet"
        elif not names:
            status.level, status.message = DiagnosticStatus.OK, "running; no objects registered"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"running; {len(names)} objects"
        if errors and last_error:
            status.message += f"; {errors} frames skipped, last: {last_error}"
            if status.level == DiagnosticStatus.OK:
                status.level = DiagnosticStatus.WARN
        transport = self.transport(pipeline, state == "active")
        lossy = {name: a for name, a in transport.items() if a.warn}
        if lossy:
            status.message += "; transport: " + "; ".join(
                f"{name}: {', '.join(a.problems)}" for name, a in lossy.items()) + \
                f" (fix: {fix_text()})"
            if status.level == DiagnosticStatus.OK:
                status.level = DiagnosticStatus.WARN
        backend = getattr(detector, "backend", None)
        values = {
            "state": state,
            "rate_hz": f"{rate:.2f}",
            "latency_p50_ms": f"{percentile(lat, 0.5):.2f}",
            "latency_p95_ms": f"{percentile(lat, 0.95):.2f}",
            "inference_p50_ms": f"{percentile(inf, 0.5):.2f}",
            # network passes per frame (recent frames): 1, more with zoom or look_closer
            "passes_per_frame": f"{sum(passes) / len(passes):.2f}" if passes else "0.00",
            "frames_received": str(received),
            "frames_processed": str(processed),
            "frames_dropped": str(dropped),
            "frames_rejected": str(rejected),
            "overlays_published": str(overlays),
            "detections_3d": str(located),
            "detections_without_3d": str(unlocated),
            "frames_3d_skipped": str(skipped_3d),
            "detections_3d_merged": str(merged_3d),
            "depth_received": str(sum(c.depth.depth_received for c in cameras if c.depth)),
            "camera_info_received": str(sum(c.depth.info_received for c in cameras if c.depth)),
            "errors": str(errors),
            "last_error": last_error,
            "backend": str(getattr(detector, "backend_name", "")),
            "backend_version": str(getattr(backend, "version", "")),
            "model_id": model_id,
            "model_dir": str(model_dir or ""),
            "objects": str(len(names)),
            "object_names": ",".join(names),
            "library_dir": str(library.directory) if library is not None else "",
            "library_skipped": ",".join(library.skipped) if library is not None else "",
            "cameras": ",".join(c.resolved for c in cameras),
        }
        if len(cameras) == 1 and transport:
            values.update(next(iter(transport.values())).values)
        elif transport:
            values["transport"] = "WARN" if lossy else "OK"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        statuses = [status]
        if len(cameras) > 1:
            for cam in cameras:
                a = transport.get(cam.resolved or cam.topic)
                s = DiagnosticStatus(name=f"{self.name} camera {cam.resolved}",
                                     hardware_id=model_id, level=DiagnosticStatus.OK,
                                     message="ok" if cam.received else "no images yet")
                if a is not None and a.warn:
                    s.level = DiagnosticStatus.WARN
                    s.message = "; ".join(a.problems) + f" (fix: {fix_text()})"
                s.values = [KeyValue(key=k, value=str(v)) for k, v in (
                    ("frames_received", cam.received), ("frames_processed", cam.processed),
                    ("frames_dropped", cam.dropped), ("frames_rejected", cam.rejected),
                    ("frames_3d_skipped", cam.skipped_3d))]
                if a is not None:
                    s.values += [KeyValue(key=k, value=v) for k, v in a.values.items()]
                statuses.append(s)
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = stamp
        return msg
