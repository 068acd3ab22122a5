"""The yolz demo, end to end over ROS 2: `make demo`.

1. Renders (once, cached in out/demo/assets) 8 reference views of a held-out textured product
   (test split of training/data/products.py) and a sequence of scenes on real photos: the product
   among its same-shape siblings and other products in two of every three, only the others in
   the third (the real-object benchmark's compositor, training/data/realbench.py).
2. Starts the yolz node as its own process with the shipped model and a fresh object library.
3. Registers the object through the `register` CLI (the RegisterObject service).
4. Plays the scenes as a camera topic with the `camera_player` CLI.
5. Listens to ~/probabilities and ~/overlay: prints a line per frame (ground truth, probability,
   peak, latency) and writes overlay PNGs, an animated GIF and summary.json to out/demo/.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from yolz_ros.runtime.geometry import box_iou  # noqa: E402
from yolz_ros.runtime.model_info import DEFAULT_MODEL  # noqa: E402


def render_assets(assets: Path, num_scenes: int, seed: int = 7, data_dir: str = "data"):
    """Reference views (RGBA PNG) of a held-out textured product and scenes of it among its
    same-shape siblings and other products on real photos (PNG + ground truth); deterministic,
    cached. Built by the real-object benchmark's own code (realbench.held_out_sequence)."""
    done = assets / "ground_truth.json"
    if done.exists():
        cached = json.loads(done.read_text())
        if len(cached) == num_scenes and all("box" in gt for gt in cached):
            return cached
    from training.data.realbench import held_out_sequence

    print(f"[demo] composing {num_scenes} scenes (once; cached in {assets})", flush=True)
    views, scenes = held_out_sequence(num_scenes, seed, data_dir)
    (assets / "views").mkdir(parents=True, exist_ok=True)
    (assets / "scenes").mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(views):
        cv2.imwrite(str(assets / "views" / f"view_{i}.png"), cv2.cvtColor(view, cv2.COLOR_RGBA2BGRA))
    truth = []
    for i, (rgb, mask) in enumerate(scenes):
        ys, xs = np.nonzero(mask)
        truth.append({"file": f"scene_{i:02d}.png", "present": bool(len(xs) >= 50),
                      "centre": [float(xs.mean()), float(ys.mean())] if len(xs) else None,
                      "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                      if len(xs) else None,
                      "visible_pixels": int(len(xs))})
        cv2.imwrite(str(assets / "scenes" / truth[-1]["file"]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    done.write_text(json.dumps(truth, indent=1))
    return truth


FOUND_IOU = 0.5  # a detection whose box overlaps the object's visible box this much finds it


def judge(present: bool, detections: int, top_iou) -> str:
    """found / mislocated / missed where the object is there, false alarm / ok where not."""
    if not present:
        return "false alarm" if detections else "ok"
    if not detections:
        return "missed"
    return "found" if top_iou >= FOUND_IOU else "mislocated"


def main(argv=None):
    ap = argparse.ArgumentParser(description="yolz end-to-end demo over ROS 2")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / DEFAULT_MODEL)
    ap.add_argument("--scenes", type=int, default=18)
    ap.add_argument("--rate", type=float, default=2.0, help="camera frames per second")
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from yolz_ros.msg import ObjectProbabilities

    started = time.monotonic()
    truth = render_assets(args.out / "assets", args.scenes)
    for old in list(args.out.glob("overlay_*.png")) + [args.out / "library"]:
        subprocess.run(["rm", "-rf", str(old)], check=True)

    # The same-host FastDDS profile (config/fastdds_same_host.xml) for the node, the camera and
    # this listener: 640x480 frames then go through shared memory, best effort, as from a camera.
    from yolz_ros.ros.dds import current_profile, set_profile
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "57"), PYTHONUNBUFFERED="1")
    set_profile(env, current_profile() or ROOT / "config" / "fastdds_same_host.xml")
    os.environ.update(env)
    node_log = open(args.out / "node.log", "w")
    node = subprocess.Popen(
        [sys.executable, "-m", "yolz_ros.ros.node", "--ros-args",
         "-p", f"model_dir:={args.model}", "-p", f"library_dir:={args.out / 'library'}",
         "-p", "backend:=onnxruntime",
         "-r", "image:=/demo/camera/image"],
        stdout=node_log, stderr=subprocess.STDOUT, env=env)

    rclpy.init()
    listener = rclpy.create_node("yolz_demo_listener")
    frames, overlays = [], []
    listener.create_subscription(
        ObjectProbabilities, "/yolz/probabilities", lambda m: frames.append((m, time.time())), 50)
    listener.create_subscription(Image, "/yolz/overlay", overlays.append, 50)

    def spin_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(listener, timeout_sec=0.05)

    try:
        views = sorted(str(p) for p in (args.out / "assets" / "views").glob("*.png"))
        print(f"[demo] registering 'demo_object' from {len(views)} views", flush=True)
        reg = subprocess.run([sys.executable, "-m", "yolz_ros.cli.register", "demo_object", *views,
                              "--timeout", "60"], env=env, capture_output=True, text=True)
        print(reg.stdout.strip() or reg.stderr.strip(), flush=True)
        if reg.returncode != 0:
            raise SystemExit(f"[demo] registration failed; node log: {args.out / 'node.log'}")

        print(f"[demo] playing {len(truth)} frames at {args.rate} Hz", flush=True)
        player = subprocess.Popen(
            [sys.executable, "-m", "yolz_ros.cli.camera_player", str(args.out / "assets" / "scenes"),
             "--rate", str(args.rate), "--frame-id", "demo_camera",
             "--ros-args", "-r", "image:=/demo/camera/image"], env=env)
        while player.poll() is None:
            spin_for(0.2)
        spin_for(2.0)  # the last frames' outputs
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
        listener.destroy_node()
        rclpy.try_shutdown()

    if len(frames) != len(truth):
        print(f"[demo] warning: {len(frames)} results for {len(truth)} frames sent "
              "(frames are matched in arrival order)")
    print(f"\n{'frame':>5} {'object there':>12} {'P(object)':>9} {'peak (x, y) px':>16} "
          f"{'true centre':>13} {'box IoU':>8} {'verdict':>12} {'latency':>9}")
    rows = []
    for i, ((msg, received), gt) in enumerate(zip(frames, truth)):
        k = list(msg.names).index("demo_object")
        grid = np.asarray(msg.probabilities, np.float32).reshape(len(msg.names), msg.rows, msg.cols)[k]
        r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
        peak = ((c + 0.5) * msg.cell_width - msg.offset_x) / msg.scale, \
               ((r + 0.5) * msg.cell_height - msg.offset_y) / msg.scale
        latency = (received - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1000
        # the node's decoded detections of the object (what ~/detections publishes), best first
        dets = sorted((d for d in msg.detections if d.name == "demo_object"),
                      key=lambda d: -d.score)
        iou = box_iou((dets[0].x_min, dets[0].y_min, dets[0].x_max, dets[0].y_max),
                      gt["box"]) if dets and gt["present"] else None
        verdict = judge(gt["present"], len(dets), iou)
        rows.append({"frame": i, "present": gt["present"], "probability": float(grid.max()),
                     "peak_xy": [float(peak[0]), float(peak[1])], "true_centre": gt["centre"],
                     "true_box": gt["box"], "detections": len(dets), "top_box_iou": iou,
                     "verdict": verdict, "latency_ms": latency})
        centre = "-" if gt["centre"] is None else f"({gt['centre'][0]:.0f}, {gt['centre'][1]:.0f})"
        print(f"{i:>5} {'yes' if gt['present'] else 'no':>12} {grid.max():>9.2f} "
              f"{f'({peak[0]:.0f}, {peak[1]:.0f})':>16} {centre:>13} "
              f"{'-' if iou is None else f'{iou:.2f}':>8} {verdict:>12} {latency:>7.0f}ms")

    from yolz_ros.ros.image_msgs import image_msg_to_array

    pictures = []
    for i, msg in enumerate(overlays):
        rgb, _ = image_msg_to_array(msg)
        cv2.imwrite(str(args.out / f"overlay_{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        pictures.append(rgb)
    if pictures:
        from PIL import Image as PILImage

        frames_pil = [PILImage.fromarray(p).resize((p.shape[1] // 2, p.shape[0] // 2)) for p in pictures]
        frames_pil[0].save(args.out / "demo.gif", save_all=True, append_images=frames_pil[1:],
                           duration=int(1000 / args.rate), loop=0)
    present = [r["probability"] for r in rows if r["present"]]
    absent = [r["probability"] for r in rows if not r["present"]]
    verdicts = [r["verdict"] for r in rows]
    ious = [r["top_box_iou"] for r in rows if r["verdict"] == "found"]
    summary = {"frames": rows, "mean_p_present": float(np.mean(present)) if present else None,
               "mean_p_absent": float(np.mean(absent)) if absent else None,
               "present_frames": len(present), "absent_frames": len(absent),
               "found": verdicts.count("found"), "missed": verdicts.count("missed"),
               "mislocated": verdicts.count("mislocated"),
               "false_alarms": verdicts.count("false alarm"),
               "median_box_iou_found": float(np.median(ious)) if ious else None,
               "overlays": len(pictures), "seconds": time.monotonic() - started}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n[demo] object there in {len(present)} frames: found {summary['found']} (a detection "
          f"with box IoU >= {FOUND_IOU} to its visible box), mislocated {summary['mislocated']}, "
          f"missed {summary['missed']}; not there in {len(absent)} frames: false alarms "
          f"{summary['false_alarms']}")
    if ious:
        print(f"[demo] median IoU of the found object's box with its visible box: "
              f"{summary['median_box_iou_found']:.2f}")
    print(f"[demo] mean P(object) where present {summary['mean_p_present']:.2f}, "
          f"where absent {summary['mean_p_absent']:.2f}")
    print(f"[demo] outputs in {args.out}: overlay_*.png ({len(pictures)}), demo.gif, summary.json, "
          f"node.log ({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
