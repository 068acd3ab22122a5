"""How well the node finds the target in a rendered RGB-D scene and where it says it is.

    python -m training.evaluation.evaluate_depth --scene out/depth_scene --out docs/depth_3d.json

The scene is `make depth-scene` (training/data/depth_scene.py). The target is registered the ways
an operator would: one view cut from the still part by its box (what `register_from_camera
--box` does), that view plus three more cut from moving frames (what `--append` collects while
the robot moves around; those frames are not scored), and the 8 RGBA reference views of views/. Every frame of the moving part then goes
through the detector and the node's 3D step (yolz_ros.ros.pipeline / yolz_ros.runtime.depth, the same code),
and is scored against truth.json:

- found: the strongest detection's peak cell centre lies on the target's visible pixels;
- 3D error: distance from that detection's 3D point to the centre of the target's visible
  surface (found frames only);
- absent frames: whether any detection fires where the target is not in view.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from training.data.depth_scene import read_depth_png
from yolz_ros.runtime.atomic_file import write_bytes_atomic
from yolz_ros.runtime.crop import clip_box, crop_view
from yolz_ros.runtime.depth import Intrinsics, locate
from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.decode import peak_cell

BOX_MARGIN = 4  # pixels around the target's box, as the printed register command has


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


APPENDED = (0, 12, 24)  # moving frames whose box crops a robot adds while it moves around


def _box_view(detector: Detector, scene: Path, part: str, frame: dict) -> np.ndarray:
    """The view ~/register_from_camera cuts for a box on a frame: the model's rule for views
    without alpha finds the object in the box on the whole frame (Detector.object_mask: GrabCut
    with the frame around the box as background), and its mask is the view's alpha."""
    x0, y0, x1, y1 = frame["box"]
    m = BOX_MARGIN
    rgb = _rgb(scene / part / "color" / f"{frame['frame']:06d}.png")
    xywh = clip_box((x0 - m, y0 - m, x1 - x0 + 2 * m, y1 - y0 + 2 * m), rgb.shape[1],
                    rgb.shape[0])
    view, _ = crop_view(rgb, xywh, detector.object_mask(rgb, xywh))
    return view


def registrations(detector: Detector, scene: Path, truth: dict):
    """{label: (views, moving frames left out of the score)}: one view by box from the still
    part; that view plus box views from 3 moving frames (what --append collects while the robot
    moves; those frames are then not scored); the 8 RGBA reference views."""
    still = _box_view(detector, scene, "still", truth["parts"]["still"][0])
    moving = truth["parts"]["moving"]
    appended = [_box_view(detector, scene, "moving", moving[i]) for i in APPENDED
                if i < len(moving) and moving[i]["visible"]]
    views = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
             for p in sorted((scene / "views").glob("view_*.png"))]
    return {"camera box": ([still], ()),
            "camera box + 3 appended": ([still] + appended, APPENDED),
            "views": (views, ())}


def score(detector: Detector, scene: Path, truth: dict, views, skip=()) -> dict:
    size = truth["image_size"]
    k = truth["intrinsics"]
    intrinsics = Intrinsics(k["fx"], k["fy"], k["cx"], k["cy"], size[1], size[0])
    embeddings = np.stack([detector.embed_views(views).vector])
    threshold = detector.info.default_threshold
    found, missed, errors, false_alarms, absent = 0, 0, [], 0, 0
    for frame in truth["parts"]["moving"]:
        if frame["frame"] in skip:
            continue
        name = f"{frame['frame']:06d}.png"
        rgb = _rgb(scene / "moving" / "color" / name)
        result = detector.detect(rgb, embeddings)
        peaks = detector.peaks(result, threshold)[0]
        if not frame["visible"]:
            absent += 1
            false_alarms += bool(peaks)
            continue
        mask = cv2.imread(str(scene / "moving" / "mask" / name), cv2.IMREAD_GRAYSCALE) > 0
        top = peaks[0] if peaks else None
        if top is None or not mask[int(top.peak_y), int(top.peak_x)]:
            missed += 1
            continue
        found += 1
        depth = read_depth_png(scene / "moving" / "depth" / name)
        rc = peak_cell(result.boxes, top.peak_x, top.peak_y)
        point, _ = locate(depth, intrinsics, result.probabilities[0], result.boxes, rc,
                          threshold)
        if point is not None:
            errors.append(float(np.linalg.norm(np.subtract(point.xyz, frame["centre_m"]))))
    e = np.asarray(errors) * 100
    return {"visible_frames": found + missed, "found": found,
            "absent_frames": absent, "absent_with_a_detection": false_alarms,
            "points": len(errors),
            "error_cm_median": round(float(np.median(e)), 2) if e.size else None,
            "error_cm_p90": round(float(np.percentile(e, 90)), 2) if e.size else None,
            "error_cm_max": round(float(e.max()), 2) if e.size else None,
            "within_2cm": int((e <= 2.0).sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", type=Path, default=Path("out/depth_scene"))
    ap.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    truth = json.loads((args.scene / "truth.json").read_text())
    detector = Detector(args.model, backend="onnxruntime", device="cpu")
    results = {"scene": str(args.scene), "siblings": truth.get("siblings"),
               "model_id": detector.model_id, "threshold": detector.info.default_threshold}
    for label, (views, skip) in registrations(detector, args.scene, truth).items():
        r = score(detector, args.scene, truth, views, skip)
        results[label] = r
        print(f"{label:23s}: found {r['found']}/{r['visible_frames']} visible frames, "
              f"{r['absent_with_a_detection']}/{r['absent_frames']} absent frames with a "
              f"detection; 3D error median {r['error_cm_median']} cm, p90 "
              f"{r['error_cm_p90']}, max {r['error_cm_max']} ({r['within_2cm']}/{r['points']} "
              "within 2 cm)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(args.out, (json.dumps(results, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
