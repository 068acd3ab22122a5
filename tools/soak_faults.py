"""The soak's fault scenarios (tools/soak.py), one function each, on the running soak ``soak``
(its node, library and checks) and a service client ``c`` (yolz_ros/ros/client.py's
RosTransport):

- kill_during_registration: SIGKILL while a 32-view registration is in flight;
- lost_after_restart, leftovers: what the restarted library must and must not hold;
- plant_hostile_entry, remove_hostile_entry: a '..' folder in library.json;
- png_bomb_on_compressed_transport: a PNG declaring 20000x20000 on compressed frames.
"""
from __future__ import annotations

import json
import signal
import time

from tools.image_bombs import png_bomb
from tools.soak_report import pct, rss_mb

# '.tmp-soak' looks like the library's own temporary folders and must still be a plain name
NAMES = [f"obj_{i}" for i in range(6)] + [".tmp-soak"]


def objects(soak):
    """The library's object folders as they are on disk."""
    folder = soak.library_dir / "objects"
    return list(folder.iterdir()) if folder.is_dir() else []


def kill_during_registration(soak, c, k, name):
    """Send a 32-view registration of ``name`` and SIGKILL the node during it: every other
    kill once its temporary folder is on disk (inside the folder write), the others at a
    random moment of the call. (views sent, acknowledged, seconds into the call, mid-write)."""
    from yolz_ros.srv import RegisterObject
    views = soak.views(32, 320)
    req = RegisterObject.Request(name=name, replace=name in soak.acked, views=views)
    future = c.send("register_object", req, 15.0)
    t_call = time.monotonic()
    if k % 2 == 0:
        end = t_call + 20.0
        while time.monotonic() < end and not future.done():
            c.executor.spin_once(timeout_sec=0.005)
            if any(p.name.startswith(".tmp-") for p in objects(soak)):
                break
        end = time.monotonic() + soak.rng.uniform(0.0, 0.15)
    else:  # anywhere in the call: transfer, embedding, write, commit, answer
        end = t_call + soak.rng.uniform(0.05, 1.5)
    while time.monotonic() < end and not future.done():
        c.executor.spin_once(timeout_sec=0.005)
    delay = time.monotonic() - t_call
    acked = future.done() and future.result() is not None and future.result().success
    soak.stop_node(signal.SIGKILL)
    mid_write = any(p.name.startswith(".tmp-") for p in objects(soak))
    c.forget("register_object", future)
    return len(views), acked, delay, mid_write


def plant_hostile_entry(soak):
    """A library.json entry whose folder is '..', written while the node is down."""
    index = json.loads((soak.library_dir / "library.json").read_text())
    index["objects"].append({"name": "evil", "folder": "..", "num_views": 1,
                             "model_id": "x", "created": ""})
    (soak.library_dir / "library.json").write_text(json.dumps(index))


def remove_hostile_entry(soak, c):
    """Removing the planted entry through the service harms nothing: library, index and node
    stay."""
    r = soak.remove(c, "evil")
    soak.check("hostile_index_entry_contained",
               (soak.library_dir / "library.json").is_file()
               and (soak.library_dir / "objects").is_dir() and soak.node.poll() is None,
               f"remove 'evil' answered {r.success if r else None}")


def lost_after_restart(k, name, before, got, num_views, acked):
    """What the restarted library lost or gained against what was acknowledged: the
    interrupted ``name`` may be old or new unless its new version was acknowledged."""
    lost = [{"kill": k, "object": obj, "acked_views": nv, "after_restart": got.get(obj)}
            for obj, nv in before.items() if obj != name and got.get(obj) != nv]
    if name in before or acked:
        allowed = {num_views} if acked else {before.get(name)}
        if not acked:
            allowed.add(num_views)  # the interrupted write may have committed
        if got.get(name) not in allowed:
            lost.append({"kill": k, "object": name, "acked_views": sorted(allowed),
                         "after_restart": got.get(name)})
    extra = set(got) - set(before) - {name}
    if extra:
        lost.append({"kill": k, "unexpected": sorted(extra)})
    return lost


def leftovers(soak):
    """(temporaries, orphans) in objects/: folders no library.json entry names."""
    entries = objects(soak)
    if not entries:
        return 0, 0
    index = json.loads((soak.library_dir / "library.json").read_text())
    referenced = {e.get("folder") for e in index["objects"]}
    return (sum(p.name.startswith(".tmp-") for p in entries),
            sum(p.name not in referenced for p in entries))


def kill_restarts(soak, c, kills, seconds):
    """``kills`` kills during a registration, each followed by a restart and a look at the
    library; once (halfway) with a hostile entry planted while the node is down."""
    lost, tmp_left, orphans_left, mid_writes, restarts = [], 0, 0, 0, []
    per_kill = max(seconds / max(kills, 1), 1.0)
    for k in range(kills):
        name, before = soak.rng.choice(NAMES), dict(soak.acked)
        try:
            num_views, acked, delay, mid_write = kill_during_registration(soak, c, k, name)
        except TimeoutError as exc:
            soak.event(f"kill {k + 1}/{kills} skipped: {exc}")
            continue
        mid_writes += mid_write
        t_kill = time.monotonic()
        plant = k == kills // 2
        if plant:
            plant_hostile_entry(soak)
        soak.start_node()
        listing = soak.wait_ready(c)
        restarts.append(round(time.monotonic() - t_kill, 2))
        got = dict(zip(listing.names, listing.num_views))
        lost += lost_after_restart(k, name, before, got, num_views, acked)
        soak.acked = dict(got)
        tmp, orphans = leftovers(soak)
        tmp_left, orphans_left = tmp_left + tmp, orphans_left + orphans
        if plant:
            remove_hostile_entry(soak, c)
        soak.event(f"kill {k + 1}/{kills} after {delay:.2f} s: {len(got)} objects back, "
                   f"restart {restarts[-1]} s")
        c.spin_for(max(0.0, per_kill - (time.monotonic() - t_kill) - delay))
    soak.check("acknowledged_objects_kept", not lost, f"{len(lost)} lost over {kills} kills",
               "0", note=json.dumps(lost)[:2000])
    soak.check("no_temporaries_after_restart", tmp_left == 0, tmp_left)
    soak.check("no_orphans_in_objects_dir", orphans_left == 0, orphans_left)
    return {"kills": kills, "writes_interrupted_mid_write": mid_writes,
            "restart_s_p50": pct(restarts, 0.5), "restart_s_max": max(restarts or [0]),
            "lost": lost}


def png_bomb_on_compressed_transport(soak, c):
    """The node on compressed frames gets a PNG declaring 20000x20000: refused from its
    header, its peak RSS unchanged."""
    from sensor_msgs.msg import CompressedImage

    from yolz_ros.ros.synthetic_camera import camera_qos
    soak.stop_node()
    soak.start_node("image_transport:=compressed")
    soak.wait_ready(c)
    hwm0 = rss_mb(soak.node.pid, "VmHWM")
    pub = c.node.create_publisher(CompressedImage, f"{soak.ns}/image/compressed",
                                  camera_qos())
    bomb = png_bomb()
    d0 = soak.fresh_diag(5.0)
    rejected0 = int(d0["frames_rejected"]) if d0 else 0
    end, rejected = time.monotonic() + 10, 0
    while time.monotonic() < end and rejected < 3:
        pub.publish(CompressedImage(format="png", data=bomb))
        c.spin_for(0.5)
        d = soak.diag
        if d and d["_incarnation"] == soak.incarnation:
            rejected = int(d["frames_rejected"]) - rejected0
    jump = (rss_mb(soak.node.pid, "VmHWM") or 0) - (hwm0 or 0)
    soak.check("bomb_refused_without_memory_spike",
               rejected >= 1 and jump < 200 and soak.node.poll() is None,
               f"{rejected} rejected, peak RSS +{jump:.0f} MB", "< 200 MB")
    soak.stop_node()


def faults(soak, kills, seconds):
    """The fault phase: the kills, then the bomb; its part of the report."""
    soak.phase = "faults"
    c = soak.client("soak_killer")
    try:
        result = kill_restarts(soak, c, kills, seconds)
        png_bomb_on_compressed_transport(soak, c)
    finally:
        c.close()
    return result

