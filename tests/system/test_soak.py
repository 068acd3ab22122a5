"""`make soak` in short, inside `make test` (tools/soak.py): its correctness checks on every
test run, not only when someone runs the soak."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_short_soak(tmp_path):
    """`make soak` in short: 30 Hz 640x480 camera, concurrent register/replace/remove/list, bad
    frames and requests, 3 kill -9s mid-write, a hostile library.json entry, a PNG bomb. Every
    correctness ("must") check must pass; the performance targets are reported, not asserted
    (they need a quiet machine)."""
    report_path = tmp_path / "report.json"
    # a domain of its own: the soak starts its own /yolz
    env = dict(os.environ, ROS_DOMAIN_ID=str(1 + (os.getpid() + 50) % 100))
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "soak.py"), "--minutes", "1.1",
                          "--kills", "3", "--out", str(tmp_path / "soak"), "--report",
                          str(report_path), "--param", "threshold:=0.5"],
                         capture_output=True, text=True, timeout=400,
                         env=env, cwd=ROOT)
    assert report_path.is_file(), out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(report_path.read_text())
    failed = [c for c in report["checks"] if c["kind"] == "must" and not c["passed"]]
    assert not failed, json.dumps(failed, indent=1) + out.stdout[-3000:]
    names = {c["name"] for c in report["checks"]}
    assert {"acknowledged_objects_kept", "every_call_answered", "bomb_refused_without_memory_spike",
            "no_files_touched_outside_library_dir", "hostile_index_entry_contained",
            "delivered_fraction", "processed_per_s", "service_p99_ms_steady"} <= names
    assert report["faults"]["kills"] == 3 and report["rss_mb"]
    assert report["node_params"] == ["threshold:=0.5"]  # given to every start of the node
    # delivery with the shipped DDS profile: a regression to FastDDS's defaults loses ~98%
    assert report["steady"]["delivered_fraction"] >= 0.8, report["steady"]
    assert out.returncode == 0
