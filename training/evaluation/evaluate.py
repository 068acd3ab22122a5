"""Evaluate a detector on held-out objects: JSON + Markdown + plots.

    python -m training.evaluation.evaluate --model models/yolz_tokens --split test

Any method with `embed(views) -> object` and `score(scene_rgb, objects) -> [K, rows, cols]` is scored
by the same code on the same episodes (the baselines in training/evaluation/baselines.py too). yolz is run
through the runtime's Detector on ONNX Runtime: what is measured is what ships.

The benchmark is the real-object one (training/data/realbench.py; `make realbench`), scored twice:
reference views as alpha cut-outs, then as photos with their background. Pairs: every (scene,
episode object); objects absent from the scene are negative pairs. Reported overall, by visible
object size, and by N = 1, 4, 8 reference views; written to <model>/evaluation_real.{json,md,png}.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.data import realbench
from training.data.products import FAMILY_SIZE
from training.evaluation.metrics import box_metrics, roc_curve, summarize

BENCH_STRIDE = 16  # the evaluation grid: 16 x 16 source pixels per cell
SIZE_BUCKETS = (("small (<1% of image)", 0.0, 0.01), ("medium (1-5%)", 0.01, 0.05),
                ("large (>=5%)", 0.05, 1.01))
# by the visible box's height in the 640x480 frame (as the independent benchmark reports it)
HEIGHT_BUCKETS = (("< 40 px", 0, 40), ("40-60 px", 40, 60), (">= 60 px", 60, 1e9))


class YolzMethod:
    """The shipped model through the runtime API (ONNX Runtime, CPU); ``zoom`` > 1: with the
    runtime's second pass over tiles at that zoom (Detector.detect's zoom)."""

    calibrated = True

    def __init__(self, model_dir, num_threads=0, box_threshold=None, zoom=1.0, look_closer=0):
        from yolz_ros.runtime.detector import Detector

        self.detector = Detector(model_dir, backend="onnxruntime", device="cpu",
                                 num_threads=num_threads)
        self.zoom, self.look_closer = float(zoom), int(look_closer)
        self.name = f"yolz ({self.detector.model_id})" + (
            f" + {self.zoom:g}x tiles" if self.zoom > 1 else "") + (
            f" + look_closer {self.look_closer}" if self.look_closer else "")
        self.input_size = tuple(self.detector.info.input_size)
        self.box_threshold = box_threshold  # None: the model's default_threshold

    def embed(self, views):
        return self.detector.embed_views(list(views)).vector

    def score(self, scene, objects, negatives=None):
        """Probabilities on the benchmark's grid (stride 16 over the scene as given): a model whose
        own grid differs (exported with another --scene-size) is read at each benchmark cell's
        centre, so every model and baseline is scored on the same cells."""
        result = self.detector.detect(scene, np.stack(objects), zoom=self.zoom,
                                      negatives=negatives, look_closer=self.look_closer)
        self.last_result = result
        rows, cols = scene.shape[0] // BENCH_STRIDE, scene.shape[1] // BENCH_STRIDE
        probs = result.probabilities
        if probs.shape[1:] == (rows, cols):
            return probs
        r_idx, c_idx = self._resample_index(result.letterbox, rows, cols)
        return probs[:, r_idx[:, None], c_idx[None, :]]

    def detections(self):
        """Per object of the last scored scene: its decoded detections (Detector.peaks at the
        model's threshold, what ~/detections publishes, unless box_threshold is given),
        [(score, x0, y0, x1, y1)], best first."""
        return [[(p.score, p.x_min, p.y_min, p.x_max, p.y_max) for p in peaks]
                for peaks in self.detector.peaks(self.last_result, self.box_threshold)]

    def _resample_index(self, lb, rows, cols):
        info = self.detector.info
        xs, ys = lb.to_model((np.arange(cols) + 0.5) * BENCH_STRIDE,
                             (np.arange(rows) + 0.5) * BENCH_STRIDE)
        return (np.clip((ys // info.stride).astype(int), 0, info.rows - 1),
                np.clip((xs // info.stride).astype(int), 0, info.cols - 1))


def families(names) -> list:
    """Each object's product family (products.FAMILY_SIZE members share shape and size), or None
    for a photo cut-out: a same-family object is the look-alike a detector must tell apart."""
    out = []
    for name in names:
        parts = str(name).split(":")
        out.append(int(parts[-1]) // FAMILY_SIZE if parts[0] == "prod" else None)
    return out


def evaluate(method, episodes, ns=(1, 4, 8)):
    """Score every (scene, object) pair of every episode for each N; returns records and timings."""
    records, frame_ms = [], []
    for ep in episodes:
        c, n_max = ep["views_a"].shape[:2]
        h, w = ep["scenes"].shape[1:3]
        fam = families(ep["object_names"]) if "object_names" in ep else [None] * c
        for n in ns:
            if n > n_max:
                continue
            objects = [method.embed(ep["views_a"][i, :n]) for i in range(c)]
            for b, scene in enumerate(ep["scenes"]):
                t0 = time.perf_counter()
                grids = np.asarray(method.score(scene, objects), np.float32)
                frame_ms.append((time.perf_counter() - t0) * 1000)
                targets = ep["targets"][b]
                if grids.shape != targets.shape:
                    raise ValueError(f"{method.name}: grids {grids.shape} but targets "
                                     f"{targets.shape}; score scenes at the evaluation grid")
                valid = np.ones(targets.shape[1:], bool)
                dets = method.detections() if hasattr(method, "detections") else None
                for i in range(c):
                    present = bool(ep["present"][b, i])
                    box = ep["boxes"][b, i] if "boxes" in ep else None
                    gt = tuple(float(v) for v in box) if present and box is not None and \
                        np.isfinite(box).all() else None
                    records.append({
                        "n": n, "grid": grids[i], "targets": targets[i],
                        "present": present, "valid": valid,
                        "size": float(ep["visible_pixels"][b, i]) / (h * w),
                        "height": gt[3] - gt[1] if gt else None,
                        "dets": dets[i] if dets is not None else None, "gt_box": gt,
                        # absent, with a sibling in the scene: the hard negative
                        "sibling": not present and fam[i] is not None and any(
                            fam[j] == fam[i] and ep["present"][b, j] for j in range(c) if j != i),
                    })
    return records, np.asarray(frame_ms)


def _boxes(sel):
    """Box metrics of records that carry decoded detections (methods with `detections`)."""
    if not sel or sel[0]["dets"] is None:
        return {}
    return box_metrics([(r["dets"], r["gt_box"]) for r in sel])


def report(records, frame_ms, calibrated):
    res = {"frame_ms_p50": float(np.median(frame_ms)) if len(frame_ms) else None, "by_n": {}}
    for n in sorted({r["n"] for r in records}):
        sel = [r for r in records if r["n"] == n]
        entry = {"overall": {**summarize(sel, calibrated), **_boxes(sel)}, "by_size": {},
                 "by_height": {}}
        siblings = [r for r in sel if r["present"] or r.get("sibling")]
        if any(r.get("sibling") for r in siblings):
            entry["overall"]["sibling_queries"] = sum(bool(r.get("sibling")) for r in siblings)
            entry["overall"]["fpr_at_95_tpr_siblings"] = summarize(siblings)["fpr_at_95_tpr"]
        negatives = [r for r in sel if not r["present"]]
        for name, lo, hi in SIZE_BUCKETS:
            pos = [r for r in sel if r["present"] and lo <= r["size"] < hi]
            entry["by_size"][name] = summarize(pos + negatives, calibrated) if pos else {}
        for name, lo, hi in HEIGHT_BUCKETS:
            pos = [r for r in sel if r["present"] and r["height"] is not None
                   and lo <= r["height"] < hi]
            if pos:
                entry["by_height"][name] = {**summarize(pos + negatives, calibrated),
                                            **_boxes(pos)}
        res["by_n"][str(n)] = entry
    return res


def fmt(v):
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else (
        f"{v:.3f}" if isinstance(v, float) else str(v))


def markdown(title, res, meta):
    cols = ["cell_ap", "presence_auroc", "fpr_at_95_tpr", "pointing_accuracy", "cell_ece",
            "presence_brier", "pairs", "positive_pairs"]
    box_cols = ["box_ap50", "box_ap", "top_box_iou_median", "detected_share"]
    lines = [f"# {title}", "", *[f"- {k}: {v}" for k, v in meta.items()],
             f"- per-frame latency p50: {fmt(res['frame_ms_p50'])} ms", "",
             "| N views | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for n, entry in res["by_n"].items():
        lines.append(f"| {n} | " + " | ".join(fmt(entry["overall"].get(c)) for c in cols) + " |")
    if any("box_ap" in e["overall"] for e in res["by_n"].values()):
        lines += ["", "Boxes: the decoded detections (Detector.peaks at the model's threshold) "
                  "against each present object's visible box; AP over all queries (detections "
                  "of absent objects are false alarms), AP = mean over IoU 0.50:0.95.", "",
                  "| N views | " + " | ".join(box_cols) + " |", "|---" * (len(box_cols) + 1) + "|"]
        for n, entry in res["by_n"].items():
            lines.append(f"| {n} | " + " | ".join(fmt(entry["overall"].get(c)) for c in box_cols)
                         + " |")
    for n, entry in res["by_n"].items():
        lines += ["", f"## By visible object size, N = {n} (size positives + all negatives)", "",
                  "| size | " + " | ".join(cols[:4]) + " | positive_pairs |", "|---" * 6 + "|"]
        for size, m in entry["by_size"].items():
            lines.append(f"| {size} | " + " | ".join(fmt(m.get(c)) for c in cols[:4])
                         + f" | {fmt(m.get('positive_pairs'))} |")
        if entry.get("by_height"):
            hc = cols[:4] + box_cols
            lines += ["", f"By visible height in the frame, N = {n}:", "",
                      "| height | " + " | ".join(hc) + " | positive_pairs |",
                      "|---" * (len(hc) + 2) + "|"]
            for size, m in entry["by_height"].items():
                lines.append(f"| {size} | " + " | ".join(fmt(m.get(c)) for c in hc)
                             + f" | {fmt(m.get('positive_pairs'))} |")
    return "\n".join(lines) + "\n"


def plot(records, out_png, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for n in sorted({r["n"] for r in records}):
        sel = [r for r in records if r["n"] == n]
        pres = np.array([r["grid"].max() for r in sel])
        lab = np.array([r["present"] for r in sel])
        fpr, tpr = roc_curve(pres, lab)
        axes[0].plot(fpr, tpr, label=f"N={n}")
        cells = np.concatenate([r["grid"].ravel() for r in sel])
        labels = np.concatenate([r["targets"].ravel() for r in sel])
        edges = np.linspace(0, 1, 11)
        idx = np.clip(np.digitize(cells, edges[1:-1]), 0, 9)
        xs = [cells[idx == b].mean() for b in range(10) if (idx == b).any()]
        ys = [labels[idx == b].mean() for b in range(10) if (idx == b).any()]
        axes[1].plot(xs, ys, "o-", label=f"N={n}")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate",
                title="presence ROC (max cell)")
    axes[1].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[1].set(xlabel="predicted cell probability", ylabel="observed frequency",
                title="cell calibration")
    for ax in axes:
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def evaluate_real(method, split, data_dir, out_dir, limit=None):
    """The real-object benchmark (training/data/realbench.py): alpha views, then photo views."""
    results, all_records = {}, {}
    for views in ("alpha", "photo"):
        episodes = realbench.load(split, data_dir, views=views, limit=limit)
        records, frame_ms = evaluate(method, episodes)
        results[views] = report(records, frame_ms, method.calibrated)
        all_records[views] = records
    meta = {"method": method.name, "benchmark": f"real objects ({split}), "
            "data/realbench/" + split, "episodes": len(episodes),
            "scenes": int(sum(len(e["scenes"]) for e in episodes)),
            "queries_per_n": int(sum(e["present"].size for e in episodes)),
            "absent_queries_per_n": int(sum((~e["present"]).sum() for e in episodes))}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation_real.json").write_text(json.dumps({"meta": meta, **results}, indent=2)
                                                  + "\n")
    md = markdown(f"yolz on the real-object benchmark ({split}), views with alpha",
                  results["alpha"], meta)
    md += "\n" + markdown("Same benchmark, views with their background (no alpha)",
                          results["photo"], {}).replace("# ", "## ", 1)
    (out_dir / "evaluation_real.md").write_text(md)
    plot(all_records["alpha"], out_dir / "evaluation_real.png", f"real objects ({split})")
    return results, meta, md


def main(argv=None):
    ap = argparse.ArgumentParser(description="Evaluate a model folder on the real-object benchmark.")
    ap.add_argument("--model", type=Path, default=Path("models/yolz_tokens"))
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--limit", type=int, help="only the first LIMIT episodes")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", type=Path, help="output folder (default: the model folder)")
    ap.add_argument("--box-threshold", type=float, default=None,
                    help="decode the detections scored for boxes at this threshold (default: "
                         "the model's default_threshold, as the node publishes them)")
    ap.add_argument("--zoom", type=float, default=1.0, help="with the runtime's second scene "
                    "pass over tiles of the frame upscaled ZOOM times (e.g. 1.5, 2)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    args = ap.parse_args(argv)

    method = YolzMethod(args.model, args.threads, args.box_threshold, args.zoom)
    print(evaluate_real(method, args.split, args.data_dir, args.out or args.model, args.limit)[2])


if __name__ == "__main__":
    main()
