"""The v4 ablation in one file: each lever's model through the runtime (evaluate.py) on val and
test, alpha and phone-photo views, N = 1 and N = 8, with the by-height bins and the FPR on
same-family siblings, beside its training run (steps, time, the trainer's own validation).

    python -m training.evaluation.ablation_v4 \
        --row "v3=models/yolz_tokens:out/v4/eval/v3" \
        --row "frozen=runs/v4/frozen:out/v4/eval/v4frozen" \
        --row "blocks 8-10=runs/v4/blocks8_10:out/v4/eval/blocks8_10" \
        --out models/yolz_tokens/ablation_v4.json

A row is LABEL=SOURCE:EVAL_DIR: SOURCE is a training run (best.pt, last.pt) or a model folder
(model.json's training record, for the shipped model); EVAL_DIR holds {val,test}/
evaluation_real.json from `python -m training.evaluation.evaluate --split S --out EVAL_DIR/S`.
A split that was not evaluated yet is left out of its row (and listed as missing), so a
half-run ablation says so; a row whose SOURCE is not on this machine keeps what --out already
holds for it (`"kept": true`). Val decides; test is reported beside it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.evaluation.evaluate import HEIGHT_BUCKETS
from yolz_ros.runtime.atomic_file import write_bytes_atomic
from yolz_ros.runtime.machine import machine_description

KEYS = ("presence_auroc", "fpr_at_95_tpr", "fpr_at_95_tpr_siblings", "pointing_accuracy",
        "cell_ap", "box_ap")
SPLITS = ("val", "test")
VIEWS = ("alpha", "photo")
NS = ("1", "8")


def _r(v):
    return round(v, 6) if isinstance(v, float) else v  # 6: no double rounding in the report


def runtime_scores(path: Path) -> dict:
    """{views: {n: {metric: value, "auroc <bin>": value}}, "frame_ms_p50"} of one evaluate.py
    result."""
    res = json.loads(path.read_text())
    out = {"method": res["meta"]["method"], "frame_ms_p50": _r(res["alpha"].get("frame_ms_p50"))}
    for views in VIEWS:
        if views not in res:
            continue
        out[views] = {}
        for n in NS:
            entry = res[views]["by_n"].get(n)
            if entry is None:
                continue
            row = {k: _r(entry["overall"].get(k)) for k in KEYS}
            for name, _, _ in HEIGHT_BUCKETS:
                row[f"presence_auroc {name}"] = _r(entry["by_height"].get(name, {})
                                                   .get("presence_auroc"))
            out[views][n] = row
    return out


def training_record(source: Path) -> dict:
    """What the row's model was trained with: a run's checkpoints, or a model folder's record."""
    if (source / "best.pt").is_file():
        import torch

        best = torch.load(source / "best.pt", map_location="cpu", weights_only=True)
        last = torch.load(source / "last.pt", map_location="cpu", weights_only=True)
        cfg = json.loads(best["config"])
        steps = int(last["step"])
        return {"source": str(source), "best_step": int(best["step"]), "steps_run": steps,
                "steps_planned": cfg["steps"], "train_seconds": round(float(last["elapsed_s"])),
                "seconds_per_step": round(float(last["elapsed_s"]) / max(1, steps), 2),
                "backbone_lr": cfg.get("backbone_lr", 0.0),
                "feature_block": cfg.get("feature_block", 10),
                "episodes_per_step": cfg["episodes_per_step"],
                "view_sample": cfg.get("view_sample", 0), "threads": cfg.get("threads"),
                "train_features": cfg["train_features"],
                "trainer_val": {k: _r(v) for k, v in json.loads(best["val"] or "{}").items()}}
    tr = json.loads((source / "model.json").read_text())["training"]
    return {"source": str(source), "best_step": tr["steps"], "steps_planned": tr["config"]["steps"],
            "train_seconds": round(tr["train_seconds"]), "data": tr["data"],
            "trainer_val": {k: _r(v) for k, v in tr.get("val", {}).items()}}


def build(rows, previous: dict | None = None) -> dict:
    """The table of `rows`; a row whose run is not on this machine (a fresh machine: runs/ and
    out/ are not kept) is carried over from `previous` (the file as it stood) as measured, with
    `"kept": true`, rather than lost."""
    earlier = {r["label"]: r for r in (previous or {}).get("rows", [])}
    out = {"machine": machine_description(), "rows": [], "missing": []}
    for label, source, eval_dir in rows:
        source = Path(source)
        if not ((source / "best.pt").is_file() or (source / "model.json").is_file()):
            if label in earlier:
                out["rows"].append({**earlier[label], "kept": True})
            else:
                out["missing"].append(f"{label}: not trained yet ({source})")
            continue
        row = {"label": label, "training": training_record(source)}
        for split in SPLITS:
            path = Path(eval_dir) / split / "evaluation_real.json"
            if path.is_file():
                row[split] = runtime_scores(path)
            else:
                out["missing"].append(f"{label}: {split} ({path})")
        out["rows"].append(row)
    return out


def parse_row(text: str):
    label, rest = text.split("=", 1)
    source, eval_dir = rest.rsplit(":", 1)
    return label, source, eval_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description="Collect the v4 ablation into one JSON.")
    ap.add_argument("--row", action="append", required=True, type=parse_row,
                    metavar="LABEL=SOURCE:EVAL_DIR")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else None
    res = build(args.row, previous)
    write_bytes_atomic(args.out, (json.dumps(res, indent=2) + "\n").encode())
    for line in res["missing"]:
        print(f"not evaluated yet: {line}")
    print(f"wrote {args.out} ({len(res['rows'])} rows)")


if __name__ == "__main__":
    main()
