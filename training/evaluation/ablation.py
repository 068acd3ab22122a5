"""The v3 ablations in one file: each training/configs/v3_ablation run scored by the trainer's own
validation (N = 8, alpha views, by visible height) on val and on test features, the training
episodes' size distribution, and the presence-by-layout test.

    python -m training.evaluation.ablation --runs runs/v3_ablation \
        --layout runs/v3_ablation/layout_{val,test}.json --out models/yolz_tokens/ablation_v3.json

Val chooses; test (featurized test benchmark, more small objects) is reported beside it. Both
are the trainer's validate(): the same queries for every run, but not the runtime's ONNX path,
so they compare runs with each other, not with the shipped model's evaluation_real.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.evaluation.evaluate import HEIGHT_BUCKETS
from yolz_ros.runtime.machine import machine_description

RUNS = {  # config name -> what it changes (training/configs/v3_ablation/<name>.yaml)
    "base": "control: training episodes 0-399, stride-16 cells",
    "more": "+ episodes 400-799 (more episodes, same generator)",
    "small": "+ episodes 400-799 with half the objects 20-60 px tall (same objects and views "
             "as more's)",
    "fine": "stride-8 cells (FineGridHead) on the control's episodes",
}
KEYS = ("presence_auroc", "fpr_at_95_tpr", "pointing_accuracy", "cell_ap")


def size_distribution(folders):
    """Share of present instances by visible height, per feature folder."""
    out = {}
    for folder in folders:
        heights = []
        for p in sorted(Path(folder).glob("episode_*.npz")):
            if ".tmp" in p.name:
                continue
            with np.load(p) as z:
                boxes, present = z["boxes"], z["present"]
            heights.append((boxes[..., 3] - boxes[..., 1])[present])
        if not heights:
            continue
        h = np.concatenate(heights)
        out[str(folder)] = {"instances": int(len(h)), **{
            name: round(float(((h >= lo) & (h < hi)).mean()), 3) for name, lo, hi in HEIGHT_BUCKETS},
            "< 20 px": round(float((h < 20).mean()), 3),
            "median px": int(round(float(np.median(h))))}
    return out


def _rounded(d):
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def score_run(run: Path, test_features: str | None, test_features8: str | None):
    from training.train import Trainable, load_features, validate

    best = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    cfg = json.loads(best["config"])
    row = {"run": str(run), "best_step": int(best["step"]), "steps": int(last["step"]),
           "train_seconds": round(float(last["elapsed_s"])), "val": _rounded(json.loads(best["val"]))}
    if test_features and Path(test_features).is_dir():
        model, cfg, mcfg = Trainable.from_checkpoint(best)
        side = test_features8 if cfg.get("cell_stride", 16) == 8 else None
        row["test"] = _rounded(validate(model, load_features(test_features, cfg=mcfg, side=side),
                                        mcfg))
    return row


def runtime_row(label: str, path: str, n: str = "8") -> dict:
    """N = 8 alpha-view results of one evaluate.py run: overall, by height, p50 latency."""
    res = json.loads(Path(path).read_text())
    entry = res["alpha"]["by_n"][n]
    keys = KEYS + ("box_ap",)
    return {"label": label, "method": res["meta"]["method"], "file": str(path),
            "frame_ms_p50": res["alpha"].get("frame_ms_p50"),
            "overall": {k: entry["overall"].get(k) for k in keys},
            "by_height": {h: {k: m.get(k) for k in ("presence_auroc", "pointing_accuracy")}
                          for h, m in entry["by_height"].items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Collect the v3 ablation runs into one JSON.")
    ap.add_argument("--runs", type=Path, default=Path("runs/v3_ablation"))
    ap.add_argument("--test-features", default="data/features/test")
    ap.add_argument("--test-features8", default="data/features8/test")
    ap.add_argument("--candidate", type=Path, help="a full-schedule run to list beside them")
    ap.add_argument("--model", type=Path, default=Path("models/yolz_tokens"),
                    help="the shipped model: its head's validation (model.json) is the reference")
    ap.add_argument("--runtime", nargs="*", default=[], metavar="LABEL=EVALUATION_JSON",
                    help="evaluate.py results (test, through the runtime) to list, e.g. the "
                         "candidate exported at two input sizes")
    ap.add_argument("--layout", type=Path, nargs="*", default=[],
                    help="presence_layout.py's outputs (val, then test)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = []
    for name, change in RUNS.items():
        if (args.runs / name / "best.pt").is_file():
            rows.append({"name": name, "change": change, **score_run(
                args.runs / name, args.test_features, args.test_features8)})
            print(json.dumps(rows[-1]), flush=True)
    if args.candidate:
        cfg = json.loads(torch.load(args.candidate / "best.pt", map_location="cpu",
                                    weights_only=True)["config"])
        rows.append({"name": "candidate", "change": "v2's full schedule on all of the above "
                     f"data ({cfg['steps']} steps; training/configs/match_small_cpu.yaml)",
                     **score_run(args.candidate, args.test_features, args.test_features8)})
    shipped = json.loads((args.model / "model.json").read_text())["training"]
    rows.append({"name": "shipped", "change": f"the shipped head ({shipped['data'].split(' (')[0]}"
                 f", {shipped['steps']} of {shipped['config']['steps']} steps)",
                 "best_step": shipped["steps"], "steps": shipped["config"]["steps"],
                 "val": _rounded(shipped["val"])})
    res = {"machine": f"{machine_description()}; runs "
                      "on 1 thread each (candidate: 2), up to four jobs sharing the CPU",
           "runs": rows,
           "sizes": size_distribution(["data/features/train", "data/features/train_small",
                                       "data/features/val", "data/features/test"]),
           "layout": [json.loads(p.read_text()) for p in args.layout],
           "runtime": [runtime_row(*item.split("=", 1)) for item in args.runtime]}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
