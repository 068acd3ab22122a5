"""Write a model folder's report.md from its JSON: model.json, evaluation_real.json (the real-object
benchmark), evaluation.json (random_urdfs) and decisions.json (what was measured on validation to
choose the design). The numbers in the report are the JSON's, so report and evaluation agree.

    python -m training.evaluation.model_report --model models/yolz_tokens
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.evaluation.evaluate import fmt
from yolz_ros.runtime.atomic_file import write_bytes_atomic

METRICS = ("cell_ap", "presence_auroc", "fpr_at_95_tpr", "pointing_accuracy", "cell_ece")
TARGETS = {"presence_auroc": (">=", 0.95), "fpr_at_95_tpr": ("<=", 0.10),
           "pointing_accuracy": (">=", 0.90), "cell_ap": (">=", 0.6)}


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return out + ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in r) + " |"
                  for r in rows]


def _by_n(res):
    return [[n] + [e["overall"].get(m) for m in METRICS] + [e["overall"].get("pairs")]
            for n, e in res["by_n"].items()]


def _by_size(res, n="8"):
    return [[size] + [m.get(k) for k in METRICS[:4]] + [m.get("positive_pairs")]
            for size, m in res["by_n"][n]["by_size"].items()]


def targets(overall):
    rows = []
    for key, (op, goal) in TARGETS.items():
        v = overall.get(key)
        ok = v is not None and (v >= goal if op == ">=" else v <= goal)
        rows.append([key, v, f"{op} {goal}", "met" if ok else "missed"])
    return rows


def comparison_rows(path: Path, n: str = "8"):
    """[method, AP, AUROC, FPR@95, pointing, p50 ms] per method of a compare.py comparison.json."""
    data = json.loads(path.read_text())
    rows = []
    for name, r in data["methods"].items():
        o = r["by_n"].get(n, {}).get("overall", {})
        rows.append([name, o.get("cell_ap"), o.get("presence_auroc"), o.get("fpr_at_95_tpr"),
                     o.get("pointing_accuracy"), r.get("frame_ms_p50")])
    return data["meta"], rows


def build(model: Path, comparison: Path | None = None) -> str:
    info = json.loads((model / "model.json").read_text())
    tr = info["training"]
    lines = [f"# {info['model_id']}", ""]
    size_mb = sum(p.stat().st_size for p in model.glob("*.onnx")) / 1e6
    tok = info.get("object_tokens", {})
    lines += [f"- format {info['format']}; input {info['input_size'][0]}x{info['input_size'][1]}, "
              f"grid {info['grid']['rows']}x{info['grid']['cols']} (stride {info['grid']['stride']})"
              + (f"; objects as {tok['count']} tokens x {tok['dim']} (views at "
                 f"{info['view_sizes']} px)" if tok else ""),
              f"- backbone: {tr.get('backbone', 'see training config')}",
              f"- ONNX files {size_mb:.1f} MB (FP16 weights); parity vs torch {tr['parity']}",
              f"- training: {tr['steps']} steps ({tr.get('checkpoint', 'last')} checkpoint), "
              f"{tr['train_seconds'] / 60:.0f} min of training-loop time, code {tr['code_sha'][:10]}"]
    if tr.get("machine"):
        lines.append(f"- machine: {tr['machine']}")
    if tr.get("data"):
        lines.append(f"- data: {tr['data']}")
    if tr.get("val"):
        v = tr["val"]
        lines.append(f"- validation (real-object val benchmark, N = 8, alpha views) at that "
                     f"checkpoint: AUROC {fmt(v.get('presence_auroc'))}, cell AP "
                     f"{fmt(v.get('cell_ap'))}, pointing {fmt(v.get('pointing_accuracy'))}")
    real_path = model / "evaluation_real.json"
    if real_path.is_file():
        real = json.loads(real_path.read_text())
        meta = real["meta"]
        lines += ["", "## Real-object benchmark (test split)", "",
                  f"{meta['benchmark']}: {meta['episodes']} episodes, {meta['scenes']} scenes "
                  f"(640x480), {meta['queries_per_n']} queries per N of which "
                  f"{meta['absent_queries_per_n']} are of absent objects. Objects never trained on: "
                  "test-split products (their label photos from test-split photos) and photo "
                  "stamps; their same-shape siblings are in the episode as negatives. "
                  "`make evaluate` (evaluation_real.json / .md / .png).", "",
                  "### Views with alpha (cut-outs)", ""]
        lines += _table(["N", *METRICS, "pairs"], _by_n(real["alpha"]))
        lines += ["", "### Views with their background (no alpha: phone photos)", ""]
        lines += _table(["N", *METRICS, "pairs"], _by_n(real["photo"]))
        lines += ["", "### By visible object size, N = 8, alpha views (size positives + all "
                  "negatives)", ""]
        lines += _table(["size", *METRICS[:4], "positive pairs"], _by_size(real["alpha"]))
        lines += ["", "### Targets (N = 8, alpha views)", ""]
        lines += _table(["metric", "value", "target", ""],
                        targets(real["alpha"]["by_n"]["8"]["overall"]))
    if comparison is not None and comparison.is_file():
        meta, rows = comparison_rows(comparison)
        lines += ["", "## Against the previous model, the training-free probe and classical "
                  "baselines (same test queries, N = 8, alpha views)", "",
                  f"`make compare` ({comparison.parent}/comparison.md; {meta.get('machine', '')}, "
                  f"{meta.get('cpu_threads', '?')} thread(s) per method, latencies measured with "
                  "other work on the machine):", ""]
        lines += _table(["method", "cell AP", "presence AUROC", "FPR@95", "pointing",
                         "p50 ms/frame"], rows)
    urdf_path = model / "evaluation.json"
    if urdf_path.is_file():
        urdf = json.loads(urdf_path.read_text())
        lines += ["", "## random_urdfs (second table: untextured shapes, test ids 900-999)", ""]
        lines += _table(["N", *METRICS, "pairs"], _by_n(urdf))
    dec_path = model / "decisions.json"
    if dec_path.is_file():
        dec = json.loads(dec_path.read_text())
        lines += ["", "## How the design was chosen (validation split of the real-object "
                  "benchmark)", "", dec.get("intro", ""), ""]
        lines += _table(["variant", "presence AUROC", "cell AP", "pointing", "note"],
                        [[r["variant"], r.get("presence_auroc"), r.get("cell_ap"),
                          r.get("pointing_accuracy"), r.get("note", "")] for r in dec["rows"]])
        if dec.get("outro"):
            lines += ["", dec["outro"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write <model>/report.md from its JSON files.")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--comparison", type=Path, default=Path("docs/comparison/comparison.json"),
                    help="a make compare result to include (skipped when missing)")
    args = ap.parse_args(argv)
    text = build(args.model, args.comparison)
    write_bytes_atomic(args.model / "report.md", text.encode())
    print(text)


if __name__ == "__main__":
    main()
