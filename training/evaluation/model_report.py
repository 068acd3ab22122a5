"""Write a model folder's report.md from its JSON: model.json, evaluation_real.json (the real-object
benchmark), evaluation.json (random_urdfs) and decisions.json (what was measured on validation to
choose the design). The numbers in the report are the JSON's, so report and evaluation agree.

    python -m training.evaluation.model_report --model models/yolz_tokens
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.evaluation.evaluate import HEIGHT_BUCKETS, fmt
from yolz_ros.runtime.atomic_file import write_bytes_atomic

METRICS = ("cell_ap", "presence_auroc", "fpr_at_95_tpr", "pointing_accuracy", "cell_ece")
BOX_METRICS = ("box_ap50", "box_ap", "top_box_iou_median", "detected_share")
# the model's targets on this benchmark (test split, N = 8, alpha views): what a shipped
# model must reach
# Detector v4's targets (issue 25), N = 8, alpha views unless said otherwise
TARGETS = {"presence_auroc": (">=", 0.92), "fpr_at_95_tpr": ("<=", 0.40),
           "pointing_accuracy": (">=", 0.88), "cell_ap": (">=", 0.65), "box_ap": (">=", 0.30)}
SMALL = "small (<1% of image)"
HEIGHT_LABELS = [name for name, _, _ in HEIGHT_BUCKETS]
HEIGHT_TARGETS = {"< 40 px": (">=", 0.80), ">= 60 px": (">=", 0.942)}  # 0.942: v3's, no worse
N1_TARGET = 0.85  # presence AUROC from one view
PHOTO_GAP = 0.03  # phone-photo views within this of alpha views, on AUROC and cell AP


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


def _check(name, v, op, goal):
    ok = v is not None and (v >= goal if op == ">=" else v <= goal)
    return [name, v, f"{op} {goal}", "met" if ok else "missed"]


def targets(real, n="8"):
    overall = real["alpha"]["by_n"][n]["overall"]
    rows = [_check(key, overall.get(key), op, goal) for key, (op, goal) in TARGETS.items()]
    for height, (op, goal) in HEIGHT_TARGETS.items():
        rows.append(_check(f"presence_auroc, {height} tall", real["alpha"]["by_n"][n]["by_height"]
                           .get(height, {}).get("presence_auroc"), op, goal))
    rows.append(_check("presence_auroc, N = 1", real["alpha"]["by_n"].get("1", {})
                       .get("overall", {}).get("presence_auroc"), ">=", N1_TARGET))
    photo = real["photo"]["by_n"][n]["overall"]
    for key in ("presence_auroc", "cell_ap"):
        gap = abs(overall[key] - photo[key]) if photo.get(key) is not None else None
        rows.append(_check(f"{key} gap, alpha vs phone-photo views", gap, "<=", PHOTO_GAP))
    return rows


def _boxes_by_n(res):
    return [[n] + [e["overall"].get(m) for m in BOX_METRICS] for n, e in res["by_n"].items()]


def _by_height(res, n="8"):
    return [[h] + [m.get(k) for k in METRICS[:4] + BOX_METRICS] + [m.get("positive_pairs")]
            for h, m in res["by_n"][n].get("by_height", {}).items()]


HEIGHT_SMALL = "< 40 px"


def _variant_row(name, res, n="8"):
    e = res["by_n"][n]
    o = e["overall"]
    return [name, o.get("presence_auroc"), o.get("fpr_at_95_tpr"), o.get("pointing_accuracy"),
            o.get("cell_ap"), o.get("box_ap"), e["by_size"].get(SMALL, {}).get("presence_auroc"),
            e.get("by_height", {}).get(HEIGHT_SMALL, {}).get("presence_auroc"),
            res.get("frame_ms_p50")]


def measured_on(model_id: str, shipped_id: str) -> str:
    """'' for the shipped model, else a note naming the model a table was measured on."""
    return "" if model_id == shipped_id else f" (measured on the previous model {model_id})"


def variant_rows(model: Path, real: dict, shipped_id: str = ""):
    """The shipped model's row and one per measured variant (<model>/variants/*.json, written by
    `evaluate --zoom Z --out ...`: same test queries), N = 8, alpha views; a variant measured on
    another model says which."""
    rows = [_variant_row("one pass (shipped)", real["alpha"])]
    for path in sorted((model / "variants").glob("*.json")):
        data = json.loads(path.read_text())
        method = data["meta"]["method"]  # "yolz (<model id>) + 1.5x tiles"
        model_id = method.split("(", 1)[-1].split(")", 1)[0]
        rows.append(_variant_row(method.rsplit(") ", 1)[-1] + measured_on(model_id, shipped_id),
                                 data["alpha"]))
    return rows if len(rows) > 1 else []


SEARCH_COLUMNS = (("presence_auroc", "AUROC"), ("fpr_at_95_tpr", "FPR@95"),
                  ("cell_ap", "cell AP"), ("recall_at_threshold", "recall at threshold"),
                  ("presence_auroc < 40 px", "AUROC < 40 px"),
                  ("fpr_at_95_tpr siblings", "FPR@95 look-alike queries"),
                  ("passes_per_frame", "passes/frame"), ("frame_ms_p50", "p50 ms/frame"))


def search_rows(path: Path):
    """(meta, rows) of a search_variants JSON (<model>/search/<split>.json)."""
    data = json.loads(path.read_text())
    rows = [[f"look_closer {r['look_closer']}" if not r["negative_views"] else
             f"{r['negative_views']} negative view(s)"] + [r.get(k) for k, _ in SEARCH_COLUMNS]
            for r in data["rows"]]
    return data["meta"], rows


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
    base_path = model / "baseline" / "evaluation_real.json"  # the previous model, same queries
    baseline = json.loads(base_path.read_text()) if base_path.is_file() else None
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
    if info.get("boxes", {}).get("training"):  # a box head trained on its own (v3)
        bt = info["boxes"]["training"]
        lines.append(f"- box head (training/model/boxes.py, trained on its own and attached to "
                     f"the detector; output {info['boxes']['output']}): {bt['steps']} steps, "
                     f"{bt['train_seconds'] / 60:.0f} min, code {bt['code_sha'][:10]}; validation "
                     f"centre-cell IoU median {fmt(bt['val'].get('centre_iou_median'))}")
    elif info.get("boxes"):
        lines.append(f"- box head (training/model/boxes.py, output {info['boxes']['output']}): "
                     "trained with the match head in the same run; validation centre-cell IoU "
                     f"median {fmt(tr.get('val', {}).get('box_centre_iou_median'))}")
    if tok.get("no_alpha", "centre") != "centre":
        lines.append(f"- views without alpha: {tok['no_alpha']} (yolz_ros/runtime/foreground.py)")
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
        if _by_height(real["alpha"]):
            lines += ["", "### By visible height in the 640x480 frame, N = 8"]
            for views in ("alpha", "photo"):
                lines += ["", f"{views} views:", ""]
                lines += _table(["height", *METRICS[:4], *BOX_METRICS, "positive pairs"],
                                _by_height(real[views]))
        if "box_ap" in real["alpha"]["by_n"]["8"]["overall"]:
            lines += ["", "### Boxes (decoded detections vs the visible box)", "",
                      "Detector.peaks at the model's threshold (what ~/detections publishes); "
                      "AP over every query, a detection of an absent object being a false "
                      "alarm; box_ap = mean AP over IoU 0.50:0.95; top_box_iou_median = IoU of "
                      "the highest detection of each present object that has one; "
                      "detected_share = the share that has one.", ""]
            rows = [[f"alpha, N={r[0]}", *r[1:]] for r in _boxes_by_n(real["alpha"])]
            rows += [[f"photo, N={r[0]}", *r[1:]] for r in _boxes_by_n(real["photo"])]
            if baseline is not None:
                rows += [[f"{baseline['meta']['method']} (baseline), alpha, N={r[0]}", *r[1:]]
                         for r in _boxes_by_n(baseline["alpha"])]
            lines += _table(["model, views", *BOX_METRICS], rows)
        if baseline is not None:
            lines += ["", f"### The previous model on the same queries: {baseline['meta']['method']}"
                      " (alpha views / phone-photo views)", ""]
            lines += _table(["N", *METRICS, "pairs"], _by_n(baseline["alpha"]))
            lines += [""]
            lines += _table(["N", *METRICS, "pairs"], _by_n(baseline["photo"]))
        variants = variant_rows(model, real, info["model_id"])
        if variants:
            lines += ["", "### Variants measured: the zoom pass, shipped off by default (same test "
                      "queries, N = 8, alpha views)", "",
                      "A second scene pass: the frame as is plus model-input tiles of the frame "
                      "upscaled 1.5x (4 tiles) or 2x (9 tiles), the max of all maps "
                      "(Detector.detect's zoom, the node's zoom parameter; measured by "
                      "`python -m training.evaluation.evaluate --zoom Z --threads 1`: "
                      "<model>/variants/; boxes decoded from the merged map). p50: ms per frame "
                      "at 1 thread as measured in each run, with other work on the machine.", ""]
            lines += _table(["variant", "presence AUROC", "FPR@95", "pointing", "cell AP",
                             "box AP", f"AUROC {SMALL}", f"AUROC {HEIGHT_SMALL} tall", "p50 ms/frame"],
                            variants)
        for split in ("val", "test"):
            path = model / "search" / f"{split}.json"
            if not path.is_file():
                continue
            meta, rows = search_rows(path)
            lines += ["", f"### Search options ({split}): look_closer and negative views (N = 8, "
                      f"alpha views){measured_on(meta['model'], info['model_id'])}", "",
                      "look_closer B: up to B 2.5x tiles on the frame pass's most undecided peaks, "
                      "max-fused (Detector.detect's look_closer, the node's parameter); negative "
                      "views: M views of each object's closest other object as its negatives "
                      "(Detector.detect's negatives). Look-alike queries: the object absent, that "
                      f"look-alike present. `{meta['command']}`; {meta['machine']}, "
                      f"{meta['threads']} thread, other work on the machine.", ""]
            lines += _table(["variant", *[name for _, name in SEARCH_COLUMNS]], rows)
        lines += ["", "### Targets (N = 8, alpha views unless said; detector v4, issue 25)", ""]
        lines += _table(["metric", "value", "target", ""], targets(real))
    if comparison is not None and comparison.is_file():
        meta, rows = comparison_rows(comparison)
        compared = meta.get("methods", "").split("(", 1)[-1].split(")", 1)[0]
        lines += ["", "## Against the training-free probe and classical baselines (same test "
                  f"queries, N = 8, alpha views){measured_on(compared, info['model_id'])}", "",
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
        if dec.get("v3"):
            v3 = dec["v3"]
            lines += ["", "## Detector v3: how the box head and the views without alpha were "
                      "chosen (validation split)", "", v3["intro"], ""]
            lines += _table(["variant", "box AP", "box AP50", "top-box IoU", "cell AP",
                             "presence AUROC", "note"],
                            [[r["variant"], r.get("box_ap"), r.get("box_ap50"),
                              r.get("top_box_iou_median"), r.get("cell_ap"),
                              r.get("presence_auroc"), r.get("note", "")] for r in v3["rows"]])
            if v3.get("outro"):
                lines += ["", v3["outro"]]
    ablation = model / "ablation_v3.json"
    if ablation.is_file():
        lines += ablation_section(json.loads(ablation.read_text()),
                                  dec.get("ablation_v3", "") if dec_path.is_file() else "")
    ablation4 = model / "ablation_v4.json"
    if ablation4.is_file():
        lines += ablation_v4_section(json.loads(ablation4.read_text()),
                                     dec.get("ablation_v4", "") if dec_path.is_file() else "")
    return "\n".join(lines) + "\n"


def ablation_v4_section(ab: dict, verdict: str) -> list[str]:
    """ablation_v4.json (python -m training.evaluation.ablation_v4) as tables."""
    lines = ["", "## v4 ablation: more data, then the backbone adapted", "",
             "Each row's model through the runtime (python -m training.evaluation.evaluate: ONNX "
             "Runtime, the published decoding), N = 8 and alpha views unless a column says "
             "otherwise; val decides, test is reported beside it. FPR@95 siblings: the absent "
             "queries are only same-family siblings of an object in the scene. Machine: "
             f"{ab['machine']}.", ""]
    rows = []
    for r in ab["rows"]:
        for split in ("val", "test"):
            s = r.get(split)
            if not s:
                continue
            a8, a1 = s["alpha"].get("8", {}), s["alpha"].get("1", {})
            p8 = s.get("photo", {}).get("8", {})
            rows.append([r["label"] if split == "val" else "", split,
                         *[a8.get(k) for k in ("presence_auroc", "fpr_at_95_tpr",
                                               "fpr_at_95_tpr_siblings", "pointing_accuracy",
                                               "cell_ap", "box_ap")],
                         *[a8.get(f"presence_auroc {h}") for h in HEIGHT_LABELS],
                         a1.get("presence_auroc"), p8.get("presence_auroc"), p8.get("cell_ap")])
    lines += _table(["model", "split", "AUROC", "FPR@95", "FPR@95 siblings", "pointing",
                     "cell AP", "box AP", *[f"AUROC {h}" for h in HEIGHT_LABELS], "N = 1 AUROC",
                     "photo AUROC", "photo cell AP"], rows)
    lines += ["", "Training (training/train.py; trainer val: its own validation estimate on the "
              "val features, N = 8, alpha views, at the best step):", ""]
    lines += _table(["model", "best / run / planned steps", "s per step", "backbone",
                     "trainer val AUROC", "FPR@95", "cell AP"],
                    [[r["label"], f"{t['best_step']} / {t.get('steps_run', t['best_step'])} / "
                      f"{t['steps_planned']}", t.get("seconds_per_step"),
                      ("frozen" if not t.get("backbone_lr") else
                       f"blocks {t['feature_block'] + 1}-10 at lr {t['backbone_lr']}")
                      if "backbone_lr" in t else "frozen",
                      t["trainer_val"].get("presence_auroc"), t["trainer_val"].get("fpr_at_95_tpr"),
                      t["trainer_val"].get("cell_ap")]
                     for r in ab["rows"] for t in [r["training"]]])
    kept = [r["label"] for r in ab["rows"] if r.get("kept")]
    if kept:
        lines += ["", "Kept as measured on an earlier machine (their runs are not on the one that "
                  "wrote this file): " + ", ".join(kept) + "."]
    if ab.get("missing"):
        lines += ["", "Not evaluated yet: " + "; ".join(ab["missing"]) + "."]
    if verdict:
        lines += ["", verdict]
    return lines


def ablation_section(ab: dict, verdict: str) -> list[str]:
    """ablation_v3.json (python -m training.evaluation.ablation) as tables."""
    lines = ["", "## v3 ablations: small objects, more episodes, stride-8 cells, presence by "
             "layout", "", "Each run is one config of training/configs/v3_ablation on the same "
             "500-step schedule (the candidate and the shipped head: full schedules, for reference), "
             "scored by the trainer's validation (N = 8, alpha views; best checkpoint by val) on "
             "val and on the featurized test split. These compare runs with each other, not with "
             f"the shipped model's evaluation above. Machine: {ab['machine']}.",
             ""]
    lo = HEIGHT_LABELS[0]
    rows = []
    for r in ab["runs"]:
        for split in ("val", "test"):
            m = r.get(split)
            if m:
                rows.append([r["name"] if split == "val" else "", r["change"] if split == "val"
                             else "", split, f"{r['best_step']} / {r['steps']}",
                             m.get("presence_auroc"), m.get("fpr_at_95_tpr"),
                             m.get("pointing_accuracy"), m.get("cell_ap"),
                             m.get(f"presence_auroc {lo}"), m.get(f"pointing_accuracy {lo}"),
                             m.get(f"presence_auroc {HEIGHT_LABELS[1]}")])
    lines += _table(["run", "change", "split", "best / steps", "AUROC", "FPR@95", "pointing",
                     "cell AP", f"AUROC {lo}", f"pointing {lo}",
                     f"AUROC {HEIGHT_LABELS[1]}"], rows)
    if ab.get("runtime"):
        lines += ["", "Through the runtime (python -m training.evaluation.evaluate, test split, N = 8, "
                  "alpha views; p50 as each evaluation measured it: the two candidate exports side by side "
                  "on 1 thread each with other jobs on the CPU):", ""]
        lines += _table(["model", "AUROC", "FPR@95", "pointing", "cell AP", "box AP",
                         *[f"AUROC {h}" for h in HEIGHT_LABELS], "p50 ms"],
                        [[f"{r['label']} ({r['method']})", *[r["overall"].get(k) for k in (
                            "presence_auroc", "fpr_at_95_tpr", "pointing_accuracy", "cell_ap",
                            "box_ap")], *[r["by_height"].get(h, {}).get("presence_auroc")
                                          for h in HEIGHT_LABELS], r.get("frame_ms_p50")]
                         for r in ab["runtime"]])
    lines += ["", "Visible heights of the present instances (share of instances):", ""]
    lines += _table(["episodes", "instances", *HEIGHT_LABELS, "< 20 px", "median px"],
                    [[folder, d["instances"], *[d[h] for h in HEIGHT_LABELS], d["< 20 px"],
                      d["median px"]] for folder, d in ab["sizes"].items()])
    for lay in ab.get("layout") or []:
        lines += ["", f"Presence by layout (training/evaluation/presence_layout.py; {lay['run']} "
                  f"step {lay['step']}, {lay['features']}): the layout score alone has AUROC "
                  f"{fmt(lay['layout_auroc'])} (mean {fmt(lay['layout_mean_present'])} present, "
                  f"{fmt(lay['layout_mean_absent'])} absent); added to the presence score with "
                  f"a weight fitted on the other half of the episodes "
                  f"({', '.join(fmt(w) for w in lay['weights_chosen'])}):", ""]
        lines += _table(["positives", "count", "AUROC", "AUROC with layout", "FPR@95",
                         "FPR@95 with layout"],
                        [[name, d["positives"], d["presence_auroc"],
                          d["presence_auroc_with_layout"], d["fpr_at_95_tpr"],
                          d["fpr_at_95_tpr_with_layout"]] for name, d in lay["by_height"].items()])
    if verdict:
        lines += ["", verdict]
    return lines


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
