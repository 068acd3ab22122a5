"""The soak's figures and checks (tools/soak.py), from what a run recorded: service latency per
service, frames sent / delivered / processed (over the steady phase and per 10-s window), the
node's RSS, and what its /diagnostics said about the camera's transport. Plain Python over the
records: no ROS here.

Records: ``calls`` dicts (service, ms, answered, excused, phase, ok); ``diag_log`` tuples (phase,
level, message, values) of every /diagnostics status of the node, ``values`` its key/values plus
_t (arrival), _incarnation (which node process), _sent (the camera's count then); ``rss``
tuples (t, incarnation, phase, MB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TRANSPORT_KEYS = ("transport", "frames_lost_fraction", "frames_in_window", "camera_period_ms",
                  "frame_lateness_p50_ms", "frame_lateness_p95_ms")
WINDOW_S = 10.0  # processed frames/s is also reported per window of this length
LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


class Checks(list):
    """The report's checks: ``check(name, passed, value, target, kind, note)`` adds one and
    prints it. kind "must": correctness; "target": performance, on a quiet machine only."""

    def __call__(self, name, passed, value=None, target=None, kind="must", note=""):
        self.append({"name": name, "passed": bool(passed), "value": value, "target": target,
                     "kind": kind, "note": note})
        print(f"[soak] {'PASS' if passed else 'FAIL'} {kind:6s} {name}: {value}"
              + (f" (target {target})" if target is not None else ""), flush=True)


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return round(float(v[min(len(v) - 1, int(q * len(v)))]), 1)


def rss_mb(pid, field="VmRSS"):
    """A process's resident (VmRSS) or peak resident (VmHWM) memory in MB; None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def processed_windows(samples, window=WINDOW_S):
    """Processed frames/s in each successive ``window`` s of (t, frames_processed) samples."""
    rates, start = [], 0
    for i, (t, _) in enumerate(samples):
        if t - samples[start][0] >= window:
            rates.append((samples[i][1] - samples[start][1]) / (t - samples[start][0]))
            start = i
    return rates


def transport_summary(diag_log, phase):
    """What /diagnostics said about the camera's transport in ``phase`` (the node's estimate of
    frames lost from stamp gaps, lateness; yolz_ros.ros.transport_health): the levels seen (the
    node's status is WARN too while bad frames are being skipped, so the transport's own verdict
    is counted apart), the loss estimate's median and max."""
    log = [(level, msg, {k: v.get(k) for k in TRANSPORT_KEYS})
           for p, level, msg, v in diag_log if p == phase]
    levels, verdicts, loss, late = {}, {}, [], []
    for level, _, values in log:
        levels[LEVELS.get(level, str(level))] = levels.get(LEVELS.get(level, str(level)), 0) + 1
        verdict = values.get("transport") or "n/a"
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        if values.get("frames_lost_fraction") not in (None, "n/a"):
            loss.append(float(values["frames_lost_fraction"]))
        if values.get("frame_lateness_p50_ms") not in (None, "n/a"):
            late.append(float(values["frame_lateness_p50_ms"]))
    warned = [msg for _, msg, values in log if values.get("transport") == "WARN"]
    period = [v["camera_period_ms"] for *_, v in log
              if v.get("camera_period_ms") not in (None, "n/a")]
    return {"diagnostics": len(log), "levels_seen": levels, "transport_seen": verdicts,
            "loss_estimate_median": round(float(np.median(loss)), 3) if loss else None,
            "loss_estimate_max": round(max(loss), 3) if loss else None,
            "lateness_p50_ms_median": round(float(np.median(late)), 1) if late else None,
            "camera_period_ms": period[-1] if period else None,
            "first_transport_warning": warned[0][:600] if warned else ""}


def frame_figures(d0, d1, diag_log, bad_frames_sent, check):
    """Frames sent, received, processed between the steady phase's diagnostics ``d0`` and
    ``d1``, and their checks."""
    def delta(key):
        return int(d1[key]) - int(d0[key])
    # the node also counts the bad frames published on its topic: not the camera's
    received = delta("frames_received") - bad_frames_sent
    processed, rejected = delta("frames_processed"), delta("frames_rejected")
    sent, span = d1["_sent"] - d0["_sent"], d1["_t"] - d0["_t"]
    windows = processed_windows([(v["_t"], int(v["frames_processed"]))
                                 for p, _, _, v in diag_log
                                 if p == "steady" and v["_incarnation"] == d1["_incarnation"]
                                 and d0["_t"] <= v["_t"] <= d1["_t"]])
    median = float(np.median(windows)) if windows else None
    r = dict(frames_sent=sent, frames_received=received, frames_processed=processed,
             frames_rejected=rejected, delivered_fraction=round(received / max(sent, 1), 4),
             sent_per_s=round(sent / span, 2), received_per_s=round(received / span, 2),
             processed_per_s=round(processed / span, 2),
             processed_per_s_window_min=round(min(windows), 2) if windows else None,
             processed_per_s_window_median=round(median, 2) if windows else None,
             node_latency_p50_ms=float(d1.get("latency_p50_ms", 0)),
             node_inference_p50_ms=float(d1.get("inference_p50_ms", 0)),
             node_passes_per_frame=float(d1.get("passes_per_frame", 0)))
    check("bad_frames_rejected", rejected > 0, rejected)
    check("delivered_fraction", r["delivered_fraction"] >= 0.95, r["delivered_fraction"],
          ">= 0.95", kind="target")
    check("processed_per_s", r["processed_per_s"] >= 25, r["processed_per_s"], ">= 25",
          kind="target")
    if windows:  # registrations must not starve the frame pipeline
        steadiness = min(windows) / max(median, 1e-9)
        check("processed_per_s_window_min_over_median", steadiness >= 0.8, round(steadiness, 3),
              ">= 0.8", kind="target")
    # the node's own estimate of the loss (from stamp gaps) against the counted one, and its
    # verdict: OK on the same-host profile, WARN when frames are lost
    t = transport_summary(diag_log, "steady")
    est, lost = t["loss_estimate_median"], 1 - r["delivered_fraction"]
    check("transport_loss_estimate_tracks_delivery", est is not None and abs(est - lost) <= 0.1,
          f"estimated {est}, counted {round(lost, 4)}", "within 0.1", kind="target")
    seen = t["transport_seen"]
    warn_share = seen.get("WARN", 0) / max(1, seen.get("WARN", 0) + seen.get("OK", 0))
    expect_warn = lost > 0.3
    check("transport_verdict", warn_share >= 0.5 if expect_warn else warn_share <= 0.2,
          f"WARN in {warn_share:.0%} of the diagnostics", ">= 50%" if expect_warn else "<= 20%",
          kind="target")
    return r


def rss_figures(rss, incarnation, check):
    """The node's RSS growth over the steady phase, after its first fifth (warm-up)."""
    rss = [r for r in rss if r[2] == "steady" and r[1] == incarnation]
    if len(rss) < 6:
        return {}
    warm = rss[min(len(rss) // 5, len(rss) - 3):][:3]
    start = float(np.median([r[3] for r in warm]))
    end = float(np.median([r[3] for r in rss[-3:]]))
    check("rss_growth_mb", end - start <= 20, round(end - start, 1), "<= 20", kind="target")
    return {"rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
            "rss_growth_mb": round(end - start, 1)}


def service_figures(calls, check):
    """Per service: calls, those excused (the node was down), unanswered, latency p50/p99 over
    the run and over the steady phase; the checks that every call was answered, in time."""
    by_service = {}
    for call in calls:
        by_service.setdefault(call["service"], []).append(call)
    services = {}
    for service, group in sorted(by_service.items()):
        counted = [x for x in group if not x["excused"]]
        answered = [x["ms"] for x in counted if x["answered"]]
        steady = [x["ms"] for x in counted if x["answered"] and x["phase"] == "steady"]
        services[service] = {"calls": len(group), "excused_node_down": len(group) - len(counted),
                             "unanswered": len(counted) - len(answered),
                             "p50_ms": pct(answered, 0.5), "p99_ms": pct(answered, 0.99),
                             "steady_p50_ms": pct(steady, 0.5),
                             "steady_p99_ms": pct(steady, 0.99)}
    unanswered = sum(s["unanswered"] for s in services.values())
    check("every_call_answered", unanswered == 0, unanswered, "0")
    worst = max(((s["steady_p99_ms"] or 0) for k, s in services.items()
                 if not k.endswith(":bad")), default=None)
    check("service_p99_ms_steady", worst is not None and worst <= 500, worst, "<= 500",
          kind="target")
    register = services.get("register_object", {}).get("steady_p99_ms")
    check("register_object_p99_ms_steady", register is not None and register <= 400, register,
          "<= 400", kind="target")
    return services
