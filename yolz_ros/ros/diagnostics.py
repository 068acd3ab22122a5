"""The node's /diagnostics status, from the pipeline's counters (plain; the node publishes it)."""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Diagnostics:
    """Builds one DiagnosticArray per call; remembers the previous call for the frame rate."""

    def __init__(self, name: str):
        self.name = name
        self._prev = (time.monotonic(), 0)

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
                lat = sorted(pipeline.stats.latencies)
                inf = sorted(pipeline.stats.inference)
                errors, last_error = pipeline.stats.errors, pipeline.stats.last_error
            received, dropped = pipeline.mailbox.counts()
        else:
            processed = rejected = overlays = errors = received = dropped = 0
            located = unlocated = 0
            lat, inf, last_error = [], [], ""
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
        backend = getattr(detector, "backend", None)
        values = {
            "state": state,
            "rate_hz": f"{rate:.2f}",
            "latency_p50_ms": f"{percentile(lat, 0.5):.2f}",
            "latency_p95_ms": f"{percentile(lat, 0.95):.2f}",
            "inference_p50_ms": f"{percentile(inf, 0.5):.2f}",
            "frames_received": str(received),
            "frames_processed": str(processed),
            "frames_dropped": str(dropped),
            "frames_rejected": str(rejected),
            "overlays_published": str(overlays),
            "detections_3d": str(located),
            "detections_without_3d": str(unlocated),
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
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        statuses = [status]
        if len(cameras) > 1:
            for cam in cameras:
                s = DiagnosticStatus(name=f"{self.name} camera {cam.resolved}",
                                     hardware_id=model_id, level=DiagnosticStatus.OK,
                                     message="ok" if cam.received else "no images yet")
                s.values = [KeyValue(key=k, value=str(v)) for k, v in (
                    ("frames_received", cam.received), ("frames_processed", cam.processed),
                    ("frames_dropped", cam.dropped), ("frames_rejected", cam.rejected))]
                statuses.append(s)
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = stamp
        return msg
