"""Soak and fault run against the yolz node over real DDS; writes a JSON report.

    python -m tools.soak [--minutes 10] [--rate 30] [--size 640x480] [--kills 20]
                           [--model DIR] [--dds profile|default] [--param look_closer:=2]
                           [--out out/soak]

Two phases, one node library:
1. steady (70% of the time): the node (its own process) with the synthetic camera
   (yolz_ros/ros/synthetic_camera.py) publishing --size rgb8 frames at --rate, best effort;
   concurrently a writer registering / replacing / removing objects every ~2 s, a reader listing
   every 0.25 s, and bad frames and bad requests every few seconds. Measured: frames delivered to
   the node (its frames_received / frames sent), processed frames per second (over the phase
   and per 10-s window), service latency p50/p99, the node's RSS over time, and what the node's
   /diagnostics said about the camera's transport (steady.transport: levels seen, its loss
   estimate from stamp gaps, lateness).
2. faults (30%; tools/soak_faults.py, a function per scenario): --kills times a registration of
   32 large views is sent and the node is killed with SIGKILL at a random moment of it;
   restarted, the library must hold every acknowledged object as acknowledged (the interrupted
   one old or new, nothing else), no temporaries, and no orphans in objects/. Once, a hostile
   library.json entry ('..' folder) is planted before a restart and removed through the
   service; once, the node runs on compressed frames and gets a PNG decompression bomb (its
   peak RSS must not jump).
Files beside library_dir are checksummed before and after: nothing outside it may change.

Every check (tools/soak_report.py) is in the report with passed true/false; kind "must" checks
are correctness, kind "target" checks are performance targets (meaningful on a quiet machine
only; the report records the load average). Exit code 0 when every "must" check passed.
``--dds profile`` (default) uses config/fastdds_same_host.xml for the camera and the node;
``--dds default`` FastDDS's defaults. Service calls go through yolz_ros/ros/client.py's
RosTransport, answered or not: the soak counts lost answers, it does not recover them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools import soak_report as report  # noqa: E402
from tools.soak_faults import NAMES, faults  # noqa: E402
from yolz_ros.ros.dds import set_profile  # noqa: E402
from yolz_ros.runtime.machine import cpu_model  # noqa: E402

PROFILE = ROOT / "config" / "fastdds_same_host.xml"


def tree_digest(root: Path, exclude: Path) -> dict:
    out = {}
    for path in sorted(root.rglob("*")):
        if path == exclude or exclude in path.parents:
            continue
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[str(path.relative_to(root)) + "/"] = "dir"
    return out


def timed_call(transport, service, request, timeout):
    """(answer or None, seconds of the call itself: waiting for discovery is not latency)."""
    try:
        transport.wait_ready([service], timeout)
    except TimeoutError:
        return None, timeout
    t0 = time.monotonic()
    answer = transport.call(service, request, timeout)
    return answer, time.monotonic() - t0


class Soak:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.sandbox = self.out / "sandbox"
        self.library_dir = self.sandbox / "library"
        if (self.sandbox / ".yolz-soak").is_file():  # a previous run's: start from nothing
            shutil.rmtree(self.sandbox)
        self.library_dir.mkdir(parents=True, exist_ok=True)
        (self.sandbox / ".yolz-soak").write_text("written by tools/soak.py\n")
        for i in range(3):  # neighbours of the library: must never change
            (self.sandbox / f"neighbour_{i}.txt").write_text(f"not the library's {i}\n")
        (self.sandbox / "neighbour_dir").mkdir(exist_ok=True)
        (self.sandbox / "neighbour_dir" / "keep.bin").write_bytes(os.urandom(1024))
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", ROS_LOG_DIR=str(self.out / "ros_log"),
                        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        self.env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
        set_profile(self.env, PROFILE if args.dds == "profile" else None)
        os.environ.update(self.env)
        if args.dds != "profile":
            set_profile(os.environ, None)
        # A namespace of this run's own: another /yolz on the same ROS domain (a test run of
        # another checkout picks its domain from its pid) must not answer our calls.
        self.ns = f"/soak_{os.getpid()}"
        self.node = None
        self.incarnation = 0
        self.node_down = threading.Event()
        self.generation = 0  # +1 whenever the node is stopped or killed
        self.bad_frames_sent = 0  # published on the camera topic beside the camera's frames
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls = []  # dicts: service, ms, answered, excused, phase, ok
        self.rss = []  # (t, incarnation, phase, rss_mb)
        self.diag = {}  # newest /diagnostics values of /yolz
        self.diag_log = []  # (phase, level, message, values) of every /diagnostics of /yolz
        self.acked = {}  # name -> num_views, as acknowledged by the node
        self.check, self.events = report.Checks(), []
        self.phase = "setup"
        self.rng = random.Random(args.seed)
        self.nprng = np.random.default_rng(args.seed)
        self.t0 = time.monotonic()
        self.load_start = [round(x, 2) for x in os.getloadavg()]

    def views(self, n, size):
        """``n`` views of a made-up object (a disc on gray, noisy) of ``size`` pixels."""
        import cv2

        from yolz_ros.ros.image_msgs import rgb_to_image_msg
        views, base = [], self.nprng.integers(0, 256, 3)
        for _ in range(n):
            img = np.full((size, size, 3), 100, np.uint8)
            color = tuple(int(c) for c in (base + self.nprng.integers(-20, 20, 3)).clip(0, 255))
            cv2.circle(img, (size // 2, size // 2), size // 3, color, -1)
            noise = self.nprng.integers(0, 40, img.shape, np.uint8)
            views.append(rgb_to_image_msg(cv2.add(img, noise)))
        return views

    def client(self, name):
        from yolz_ros.ros.client import RosTransport
        return RosTransport(f"{self.ns}/yolz", name, args=[])

    # -- the node ----------------------------------------------------------------------------
    def start_node(self, *params):
        self.incarnation += 1
        cmd = [sys.executable, "-m", "yolz_ros.ros.node", "--ros-args",
               "-p", f"library_dir:={self.library_dir}", "-p", "backend:=onnxruntime",
               "-p", "device:=cpu", "-p", "precision:=fp32", "-r", f"__ns:={self.ns}"]
        for p in ([f"model_dir:={self.args.model}"] if self.args.model else []) + \
                list(self.args.param) + list(params):
            cmd += ["-p", p]
        with open(self.out / f"node_{self.incarnation:02d}.log", "w") as log:
            self.node = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env=self.env)

    def wait_ready(self, c, timeout=60.0):
        from yolz_ros.srv import ListObjects
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.node.poll() is not None:
                raise RuntimeError(f"node exited with {self.node.returncode}; see "
                                   f"{self.out}/node_{self.incarnation:02d}.log")
            r, _ = timed_call(c, "list_objects", ListObjects.Request(), 2.0)
            if r is not None and r.success:
                self.node_down.clear()
                return r
        raise RuntimeError("node not ready within %.0f s" % timeout)

    def stop_node(self, sig=signal.SIGTERM):
        """Stop (or with SIGKILL kill) the node; the calls it leaves unanswered are excused."""
        if self.node is None:
            return None
        self.node_down.set()
        self.generation += 1
        if self.node.poll() is None:
            self.node.send_signal(sig)
        try:
            return self.node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.node.kill()
            return self.node.wait()

    def event(self, text):
        t = round(time.monotonic() - self.t0, 1)
        self.events.append((t, text))
        print(f"[soak] {t:7.1f}s {text}", flush=True)

    def record(self, service, seconds, response, excused=False):
        """One service call; ``service`` ends in ':bad' for the deliberately bad requests (their
        latency includes moving up to 34 MB, so they are reported apart)."""
        with self.lock:
            self.calls.append({"service": service, "ms": round(seconds * 1000, 1),
                               "answered": response is not None, "excused": excused,
                               "phase": self.phase,
                               "ok": bool(response is not None and response.success)})

    # -- threads -----------------------------------------------------------------------------
    def reader(self):
        from yolz_ros.srv import ListObjects
        c = self.client("soak_reader")
        try:
            while not self.stop.is_set():
                down, generation = self.node_down.is_set(), self.generation
                r, s = timed_call(c, "list_objects", ListObjects.Request(), 10.0)
                # a call the node could not answer because it was stopped or killed meanwhile
                excused = down or self.node_down.is_set() or generation != self.generation
                self.record("list_objects", s, r, excused=excused)
                self.stop.wait(0.25)
        finally:
            c.close()

    def on_diag(self, msg):
        for status in msg.status:
            if status.name.endswith(f" {self.ns}/yolz"):
                values = {kv.key: kv.value for kv in status.values}
                level = status.level
                values.update(_incarnation=self.incarnation, _t=time.monotonic(),
                              _sent=self.camera_counts(),  # the camera's count at this moment
                              _level=ord(level) if isinstance(level, bytes) else int(level))
                self.diag = values
                self.diag_log.append((self.phase, values["_level"], status.message, values))

    def monitor(self):
        from diagnostic_msgs.msg import DiagnosticArray
        c = self.client("soak_monitor")
        c.node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diag, 10)
        last = 0.0
        try:
            while not self.stop.is_set():
                c.executor.spin_once(timeout_sec=0.1)
                now = time.monotonic()
                if now - last >= 2.0 and self.node is not None and self.node.poll() is None:
                    last = now
                    value = report.rss_mb(self.node.pid)
                    if value is not None:
                        self.rss.append((round(now - self.t0, 1), self.incarnation, self.phase,
                                         round(value, 1)))
        finally:
            c.close()

    def fresh_diag(self, timeout=5.0):
        t = time.monotonic()
        while time.monotonic() < t + timeout:
            d = self.diag
            if d and d["_t"] > t and d["_incarnation"] == self.incarnation:
                return d
            time.sleep(0.05)
        return None

    def camera_counts(self):
        try:
            return json.loads((self.out / "camera_counts.json").read_text())["sent"]
        except (OSError, ValueError, KeyError):
            return None

    # -- the steady phase ----------------------------------------------------------------------
    def register(self, c, name, views, replace, timeout=30.0):
        from yolz_ros.srv import RegisterObject
        req = RegisterObject.Request(name=name, replace=replace, views=views)
        r, s = timed_call(c, "register_object", req, timeout)
        self.record("register_object", s, r)
        if r is not None and r.success:
            self.acked[name] = len(views)
        return r

    def remove(self, c, name, timeout=30.0, kind="remove_object"):
        from yolz_ros.srv import RemoveObject
        r, s = timed_call(c, "remove_object", RemoveObject.Request(name=name), timeout)
        self.record(kind, s, r)
        if r is not None and r.success:
            self.acked.pop(name, None)
        return r

    def writer_step(self, c):
        name = self.rng.choice(NAMES)
        n = self.rng.randint(2, 8)
        views = self.views(n, self.rng.choice((64, 96, 128, 160)))
        if name in self.acked and self.rng.random() < 0.3:
            return self.remove(c, name)
        return self.register(c, name, views, replace=name in self.acked)

    def bad_requests(self, c):
        """Bad requests must be refused, and answered; True when every one was."""
        from sensor_msgs.msg import Image

        from yolz_ros.ros.image_msgs import array_to_image_msg
        from yolz_ros.runtime.limits import MAX_VIEWS
        from yolz_ros.srv import RegisterObject
        ok_view = self.views(1, 64)[0]
        big = array_to_image_msg(np.zeros((2900, 2900, 4), np.uint8), "rgba8")  # 33.6 MB
        cases = {"bad name!": [ok_view], "nothing": [], "many": [ok_view] * (MAX_VIEWS + 1),
                 "enc": [Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128))],
                 "short": [Image(height=64, width=64, encoding="rgb8", step=192,
                                 data=bytes(10))],
                 "huge": [big]}
        refused = True
        for name, views in cases.items():
            req = RegisterObject.Request(name=name, views=views)
            r, s = timed_call(c, "register_object", req, 30.0)
            self.record("register_object:bad", s, r)
            if r is None or r.success:
                refused = False
                self.event(f"bad request {name!r} was not refused: {r}")
        for name in ("../etc", "never_registered"):
            r = self.remove(c, name, kind="remove_object:bad")
            refused &= r is not None and not r.success
        return refused

    def bad_frames(self, frames_pub):
        """Frames the node must reject (and count as received)."""
        from sensor_msgs.msg import Image
        for msg in (Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128)),
                    Image(height=480, width=640, encoding="rgb8", step=1920, data=bytes(100)),
                    Image(height=0, width=0, encoding="rgb8", step=0, data=b"")):
            frames_pub.publish(msg)
            self.bad_frames_sent += 1

    def steady(self, seconds):
        from sensor_msgs.msg import Image

        from yolz_ros.ros.synthetic_camera import camera_qos
        self.phase = "steady"
        c = self.client("soak_writer")
        frames_pub = c.node.create_publisher(Image, f"{self.ns}/image", camera_qos())
        d0 = self.fresh_diag(10.0)
        t_start = time.monotonic()
        next_bad, refused_all, bad_rounds, alive = t_start + 3.0, True, 0, True
        while time.monotonic() - t_start < seconds:
            if self.node.poll() is not None:
                alive = False
                self.event("node died during the steady phase")
                break
            self.writer_step(c)
            if time.monotonic() > next_bad:
                refused_all &= self.bad_requests(c)
                self.bad_frames(frames_pub)
                bad_rounds += 1
                next_bad = time.monotonic() + 8.0
            c.spin_for(self.rng.uniform(1.0, 2.5))
        elapsed = time.monotonic() - t_start
        d1 = self.fresh_diag(10.0)
        c.close()
        self.check("node_alive_steady", alive and self.node.poll() is None, alive)
        self.check("bad_requests_refused_and_answered", refused_all and bad_rounds > 0,
                   f"{bad_rounds} rounds")
        result = {"seconds": round(elapsed, 1),
                  "transport": report.transport_summary(self.diag_log, "steady")}
        if d0 and d1 and d0.get("_sent") is not None and d1.get("_sent") is not None:
            result.update(report.frame_figures(d0, d1, self.diag_log, self.bad_frames_sent,
                                               self.check))
        else:
            self.check("frame_counts_available", False, "no diagnostics or camera counts")
        result.update(report.rss_figures(self.rss, self.incarnation, self.check))
        return result

    # -- the run -------------------------------------------------------------------------------
    def run(self):
        args = self.args
        before = tree_digest(self.sandbox, self.library_dir)
        with open(self.out / "camera.log", "w") as log:
            camera = subprocess.Popen(
                [sys.executable, "-m", "yolz_ros.ros.synthetic_camera", "--topic",
                 f"{self.ns}/image", "--rate", str(args.rate), "--size", args.size,
                 "--seconds", "0", "--wait", "0", "--counts", str(self.out / "camera_counts.json")],
                env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.start_node()
        threads = [threading.Thread(target=self.monitor, daemon=True),
                   threading.Thread(target=self.reader, daemon=True)]
        results = {}
        try:
            c = self.client("soak_setup")
            try:
                self.wait_ready(c)
            finally:
                c.close()
            threads[0].start()
            time.sleep(3.0)  # the camera discovers the node, first frames flow
            threads[1].start()
            total = args.minutes * 60.0
            results["steady"] = self.steady(total * 0.7)
            results["faults"] = faults(self, args.kills, total * 0.3)
        finally:
            self.stop.set()
            for t in threads:
                if t.is_alive():
                    t.join(timeout=10)
            self.stop_node()
            camera.send_signal(signal.SIGTERM)
            try:
                camera.wait(timeout=10)
            except subprocess.TimeoutExpired:
                camera.kill()
        after = tree_digest(self.sandbox, self.library_dir)
        changed = sorted(set(before.items()) ^ set(after.items()))
        self.check("no_files_touched_outside_library_dir", not changed, len(changed),
                   note=str(changed[:10]))
        results.update({
            "command": " ".join(sys.argv),
            "minutes": args.minutes, "rate_hz": args.rate, "size": args.size,
            "dds": args.dds, "model": args.model or "shipped default", "node_params": args.param,
            "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                        "cpu": cpu_model(), "python": platform.python_version(),
                        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                        "load_avg_start": self.load_start},
            "services": report.service_figures(self.calls, self.check),
            "rss_mb": self.rss,
            "events": self.events,
            "checks": list(self.check),
            "passed_must": all(c["passed"] for c in self.check if c["kind"] == "must"),
            "passed_targets": all(c["passed"] for c in self.check if c["kind"] == "target"),
        })
        return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--model", default="", help="model folder; '' = the shipped default")
    parser.add_argument("--dds", choices=("profile", "default"), default="profile")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="a node parameter for every start, e.g. look_closer:=2 (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "out" / "soak"))
    parser.add_argument("--report", default="", help="report path (default OUT/report.json)")
    args = parser.parse_args(argv)
    soak = Soak(args)
    results = soak.run()
    path = Path(args.report) if args.report else soak.out / "report.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    failed = [c["name"] for c in results["checks"] if not c["passed"]]
    print(f"[soak] report {path}; must checks {'passed' if results['passed_must'] else 'FAILED'}"
          f"; failed: {failed or 'none'}", flush=True)
    return 0 if results["passed_must"] else 1


if __name__ == "__main__":
    sys.exit(main())
