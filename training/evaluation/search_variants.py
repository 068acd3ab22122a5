"""The runtime's training-free search options on the real-object benchmark (N = 8, alpha views):
look_closer budgets and negative views of the confusing look-alike.

    python -m training.evaluation.search_variants --split test --threads 1 \\
        --out models/yolz_tokens/search/test.json

look_closer B (Detector.detect's look_closer): every scene scored with up to B 2.5x tiles;
reported overall and for objects < 40 px tall, with network passes and ms per frame.

Negatives (Detector.detect's negatives): for each object of an episode, the look-alike a user
would point at is the other episode object whose mean token is closest to its own; M of that
look-alike's reference views become the object's negatives. "Sibling" queries are the object's
queries in scenes where it is absent and that look-alike is present: their FPR@95 (against all
present queries) is what a negative should cut; recall at the model's threshold (present
queries whose best cell reaches it) is what it must keep.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from training.data import realbench
from training.evaluation.evaluate import HEIGHT_BUCKETS, YolzMethod
from training.evaluation.metrics import summarize
from yolz_ros.runtime.machine import machine_description

N_VIEWS = 8


def records(method, episodes, negatives_per_object=0):
    """(scene, object) records as evaluate.evaluate makes them, plus each query's look-alike
    flag; and (ms, passes) per frame."""
    out, frames = [], []
    dim = method.detector.info.tokens.dim
    for ep in episodes:
        c = ep["views_a"].shape[0]
        objects = [method.embed(ep["views_a"][i, :N_VIEWS]) for i in range(c)]
        means = np.stack([o[:dim] for o in objects])
        sim = means @ means.T
        np.fill_diagonal(sim, -np.inf)
        look_alike = sim.argmax(axis=1)  # [C] each object's closest other object
        negatives = None
        if negatives_per_object:
            negatives = [np.stack([method.embed(ep["views_a"][j, v:v + 1])
                                   for v in range(negatives_per_object)]) for j in look_alike]
        for b, scene in enumerate(ep["scenes"]):
            t0 = time.perf_counter()
            grids = np.asarray(method.score(scene, objects, negatives), np.float32)
            frames.append(((time.perf_counter() - t0) * 1e3, method.last_result.passes))
            for i in range(c):
                present = bool(ep["present"][b, i])
                box = ep["boxes"][b, i]
                height = float(box[3] - box[1]) if present and np.isfinite(box).all() else None
                out.append({"grid": grids[i], "targets": ep["targets"][b][i], "present": present,
                            "valid": np.ones(grids.shape[1:], bool), "height": height,
                            "sibling": not present and bool(ep["present"][b, look_alike[i]])})
    return out, np.asarray(frames)


def scores(recs, frames, threshold):
    pos = [r for r in recs if r["present"]]
    row = {**summarize(recs),
           "recall_at_threshold": float(np.mean([r["grid"].max() >= threshold for r in pos])),
           "sibling_queries": sum(r["sibling"] for r in recs),
           "fpr_at_95_tpr siblings": summarize(pos + [r for r in recs if r["sibling"]])
           ["fpr_at_95_tpr"],
           "frame_ms_p50": float(np.median(frames[:, 0])),
           "passes_per_frame": float(frames[:, 1].mean())}
    absent = [r for r in recs if not r["present"]]
    for name, lo, hi in HEIGHT_BUCKETS:
        bin_ = [r for r in pos if r["height"] is not None and lo <= r["height"] < hi]
        sub = summarize(bin_ + absent)
        row[f"presence_auroc {name}"] = sub["presence_auroc"]
        row[f"fpr_at_95_tpr {name}"] = sub["fpr_at_95_tpr"]
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/yolz_tokens"))
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--limit", type=int, help="only the first LIMIT episodes")
    ap.add_argument("--budgets", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--negatives", type=int, nargs="*", default=[1, 2],
                    help="negative views of the look-alike per object (budget 0)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    ap.add_argument("--out", type=Path, required=True, help="JSON written here")
    args = ap.parse_args(argv)

    episodes = realbench.load(args.split, args.data_dir, views="alpha", limit=args.limit)
    rows = []
    for budget, negs in [(b, 0) for b in args.budgets] + [(0, m) for m in args.negatives]:
        method = YolzMethod(args.model, args.threads, look_closer=budget)
        recs, frames = records(method, episodes, negs)
        row = {"look_closer": budget, "negative_views": negs,
               **scores(recs, frames, method.detector.info.default_threshold)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"model": method.detector.model_id, "split": args.split, "episodes": len(episodes),
            "n_views": N_VIEWS, "views": "alpha", "threads": args.threads,
            "machine": machine_description(), "command": "python -m "
            "training.evaluation.search_variants " + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
