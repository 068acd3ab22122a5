"""End-to-end latency of the runtime on this machine: table, JSON and a PNG plot.

    python -m tools.benchmark --model models/yolz_tokens --out docs/benchmark_cpu.json
    python -m tools.benchmark --model out/candidate --baseline models/yolz_tokens --out out/b.json

A frame is timed as Detector.detect sees it: letterbox + inference (sigmoid is in the graph) +
padding mask. Measured: latency vs number of objects K (640x480), vs input image size (K=4), and
registration of one object from N=8 views. Each point: warm-up, then --iterations runs. The
points of one sweep are timed in turns (one run of each per round, the order rotating): this
VM's speed drifts by 20-30% over seconds, which timed point after point showed up as a
difference between K values; in turns the drift hits every point alike. ``--baseline`` times
another model's 640x480 K = 1 frame in the same turns as this one's: the like-for-like latency
ratio a model change is held to.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.machine import cpu_model

OBJECT_COUNTS = (1, 4, 16, 64)
IMAGE_SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))  # width, height
SIZE_K = 4
REGISTRATION_VIEWS = 8


def measure_in_turns(fns: List[Callable[[], object]], iterations: int,
                     warmup: int) -> List[Dict[str, float]]:
    """Statistics of each of ``fns``, timed in rotating turns (see the module's note)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for i in range(iterations):
        for j in np.roll(np.arange(len(fns)), i):
            start = time.perf_counter()
            fns[j]()
            times[j].append((time.perf_counter() - start) * 1e3)
    return [stats(t) for t in times]


def measure(fn: Callable[[], object], iterations: int, warmup: int) -> Dict[str, float]:
    return measure_in_turns([fn], iterations, warmup)[0]


def stats(times) -> Dict[str, float]:
    t = np.array(times)
    return {"p50_ms": round(float(np.percentile(t, 50)), 3),
            "p99_ms": round(float(np.percentile(t, 99)), 3),
            "mean_ms": round(float(t.mean()), 3),
            "throughput_hz": round(float(1e3 / t.mean()), 1), "iterations": len(t)}


def run(det: Detector, iterations: int, warmup: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    e = det.info.embedding_dim

    def objects(k):
        v = rng.standard_normal((k, e)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def frame(w, h):
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    image = frame(640, 480)
    embs = [objects(k) for k in OBJECT_COUNTS]
    timed = measure_in_turns([lambda e=e: det.detect(image, e) for e in embs], iterations,
                             warmup)
    vs_objects = [{"objects": k, "image": "640x480", **t} for k, t in zip(OBJECT_COUNTS, timed)]
    emb = objects(SIZE_K)
    images = [frame(w, h) for w, h in IMAGE_SIZES]
    timed = measure_in_turns([lambda i=i: det.detect(i, emb) for i in images], iterations,
                             warmup)
    vs_size = [{"objects": SIZE_K, "image": f"{w}x{h}", **t}
               for (w, h), t in zip(IMAGE_SIZES, timed)]
    views = [rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)
             for _ in range(REGISTRATION_VIEWS)]
    registration = {"views": REGISTRATION_VIEWS, "view_image": "240x240",
                    **measure(lambda: det.embed_views(views), max(10, iterations // 5), warmup)}
    k_ratio = vs_objects[-1]["p50_ms"] / vs_objects[0]["p50_ms"]
    return {"vs_objects": vs_objects, "vs_image_size": vs_size, "registration": registration,
            f"k{OBJECT_COUNTS[-1]}_over_k{OBJECT_COUNTS[0]}_p50": round(k_ratio, 2)}


def versus(det: Detector, baseline: Detector, iterations: int, warmup: int, seed: int = 0) -> dict:
    """640x480, K = 1: this model and ``baseline`` timed in the same turns."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def one(d):
        v = rng.standard_normal((1, d.info.embedding_dim)).astype(np.float32)
        return v / np.linalg.norm(v)

    a, b = one(det), one(baseline)
    mine, theirs = measure_in_turns([lambda: det.detect(image, a),
                                     lambda: baseline.detect(image, b)], iterations, warmup)
    return {"image": "640x480", "objects": 1, "model": det.model_id, "model_ms": mine,
            "baseline": baseline.model_id, "baseline_ms": theirs,
            "p50_ratio": round(mine["p50_ms"] / theirs["p50_ms"], 3)}


def environment(det: Detector, num_threads: int) -> dict:
    import cv2

    env = {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
           "python": platform.python_version(), "numpy": np.__version__,
           "opencv": cv2.__version__, "backend": det.backend_name,
           "backend_version": getattr(det.backend, "version", "unknown"),
           "intra_op_threads": num_threads or "all cores", "model_id": det.model_id,
           "model_input_size": list(det.info.input_size), "grid": [det.info.rows, det.info.cols]}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return env


def print_table(results: dict) -> None:
    print(f"{'objects':>7} {'image':>10} {'p50 ms':>8} {'p99 ms':>8} {'frames/s':>9}")
    for row in results["vs_objects"] + results["vs_image_size"]:
        print(f"{row['objects']:>7} {row['image']:>10} {row['p50_ms']:>8.1f} "
              f"{row['p99_ms']:>8.1f} {row['throughput_hz']:>9.1f}")
    reg = results["registration"]
    print(f"registration, {reg['views']} views: p50 {reg['p50_ms']:.1f} ms, "
          f"p99 {reg['p99_ms']:.1f} ms")
    ratio = f"k{OBJECT_COUNTS[-1]}_over_k{OBJECT_COUNTS[0]}_p50"
    print(f"K={OBJECT_COUNTS[-1]} / K={OBJECT_COUNTS[0]} (p50): {results[ratio]:.2f}")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, env = report["results"], report["environment"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, rows, key, label in ((axes[0], results["vs_objects"], "objects",
                                  "objects K (640x480 image)"),
                                 (axes[1], results["vs_image_size"], "image",
                                  f"input image (K={SIZE_K})")):
        x = [str(r[key]) for r in rows]
        ax.plot(x, [r["p50_ms"] for r in rows], "o-", label="p50")
        ax.plot(x, [r["p99_ms"] for r in rows], "s--", label="p99")
        ax.set_xlabel(label)
        ax.set_ylabel("latency per frame (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{env['model_id']} on {env['backend']}, {env['cpu']} ({env['cores']} cores)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description="Benchmark the yolz_ros runtime on this machine.")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmark_cpu.json"),
                    help="JSON to write; the plot goes beside it as .png")
    ap.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--baseline", default=None,
                    help="another model folder: its K=1 640x480 latency in the same turns")
    args = ap.parse_args(argv)

    det = Detector(args.model, backend=args.backend, device=args.device,
                   precision=args.precision, num_threads=args.threads)
    report = {"environment": environment(det, args.threads),
              "results": run(det, args.iterations, args.warmup),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "load_avg_start": list(os.getloadavg())}
    if args.baseline:
        base = Detector(args.baseline, backend=args.backend, device=args.device,
                        precision=args.precision, num_threads=args.threads)
        # both ways round: on this VM the session listed first measured 2-10% slower
        # whichever model it was; the geometric mean of the two ratios cancels that
        there = versus(det, base, args.iterations * 2, args.warmup)
        back = versus(base, det, args.iterations * 2, args.warmup)
        report["versus_baseline"] = {**there, "reverse": back, "p50_ratio": round(
            (there["p50_ratio"] / back["p50_ratio"]) ** 0.5, 3)}
    report["load_avg_end"] = list(os.getloadavg())
    print_table(report["results"])
    if args.baseline:
        v = report["versus_baseline"]
        r = v["reverse"]
        print(f"K=1 640x480 p50: {v['model_ms']['p50_ms']:.1f} ms vs baseline "
              f"{v['baseline_ms']['p50_ms']:.1f} ms; listed the other way round "
              f"{r['baseline_ms']['p50_ms']:.1f} vs {r['model_ms']['p50_ms']:.1f} ms; "
              f"ratio (geometric mean) {v['p50_ratio']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
