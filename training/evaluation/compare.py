"""yolz against the classical reference-image baselines, on the SAME held-out episodes.

    python -m training.evaluation.compare --model models/yolz_tokens --split test --out docs/comparison

Every method goes through training.evaluation.evaluate.evaluate / report (identical pairs, grid and metrics;
per-frame latency = one `score` call on one scene for all K episode objects, measured in the same
run with --threads CPU threads for every method (default 1), object embedding excluded). Writes <out>/comparison.md, comparison.json, comparison_bars.png
(cell AP / presence AUROC per method and N), comparison_curves.png (presence ROC and cell PR at the
largest N) and example_*.png (scenes with each method's heatmap where the reference method --
yolz when run, else the first method -- succeeds and the others fail, and vice versa).
The benchmark is the real-object one (training/data/realbench.py). Retired models are not re-run:
their last measured rows (frozen_rows.json) are printed under the measured ones when the run is on
the same benchmark.

Breakdowns: overall and by visible object size (evaluate.report's by_size), by N = 1, 4, 8
reference views, by textured vs textureless query object, and by occlusion from the episodes'
"visible_fraction" [B, C] (the share of a pasted object left visible by those on top of it, as
the benchmark's compositor records it).

Texture measure (per episode object): mean Sobel gradient magnitude of the grayscale reference
views over their foreground pixels (not gray 114; views on a random background count whole, so
when an object has gray-background views only those are used). An object is "textureless" when
this is below the median over all episode objects of the evaluation set, else "textured". The SIFT
keypoint count on the same views is stored next to it in the JSON. A pair is bucketed by its query
object (so each bucket holds that bucket's positive and negative pairs).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from training.data import realbench
from training.evaluation.evaluate import SIZE_BUCKETS, evaluate, fmt, report
from training.evaluation.metrics import pr_curve, roc_curve, summarize
from yolz_ros.runtime.machine import machine_description

METHODS = ("yolz", "probe", "sift", "template", "histogram", "xfeat")
NS = (1, 4, 8)
METRICS = ("cell_ap", "presence_auroc", "fpr_at_95_tpr", "pointing_accuracy")
FROZEN_ROWS = Path(__file__).resolve().with_name("frozen_rows.json")


def painted(view: np.ndarray) -> np.ndarray:
    """An RGBA view as RGB on gray 114 (the runtime's rule, which the baselines' masks rely on)."""
    view = np.asarray(view)
    if view.shape[-1] != 4:
        return view
    return np.where(view[..., 3:] >= 128, view[..., :3], np.uint8(114)).astype(np.uint8)


class PaintedViews:
    """A baseline that takes RGB views only: RGBA views are painted first, scenes pass through."""

    def __init__(self, method):
        self.method, self.name, self.calibrated = method, method.name, method.calibrated

    def embed(self, views):
        return self.method.embed([painted(v) for v in views])

    def score(self, scene, objects):
        return self.method.score(scene, objects)


def make_method(key: str, model_dir: Path, threads: int = 1):
    if key == "yolz":
        from training.evaluation.evaluate import YolzMethod

        return YolzMethod(model_dir, num_threads=threads)
    if key == "probe":
        from training.evaluation.probe import TokenProbe

        return TokenProbe(num_threads=threads)
    from training.evaluation.baselines import BASELINES

    method = BASELINES[key](num_threads=threads) if key == "xfeat" else BASELINES[key]()
    return PaintedViews(method)


def set_threads(threads: int):
    """One thread count for every library that runs a method (0 = the libraries' defaults)."""
    if threads > 0:
        cv2.setNumThreads(threads)
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass


# ----------------------------------------------------------------------------- pair bookkeeping

def pair_keys(episodes, ns=NS):
    """(episode, n, scene, object) of each record, in training.evaluation.evaluate.evaluate's order."""
    keys = []
    for e, ep in enumerate(episodes):
        c, n_max = ep["views_a"].shape[:2]
        for n in ns:
            if n > n_max:
                continue
            for b in range(len(ep["scenes"])):
                for i in range(c):
                    keys.append((e, n, b, i))
    return keys


def texture_stats(episodes):
    """Per episode object: mean gradient magnitude on foreground and SIFT keypoints per view."""
    sift = cv2.SIFT_create()
    grads, kps = [], []
    for ep in episodes:
        g_ep, k_ep = [], []
        for views in ep["views_a"]:
            views = [painted(v) for v in views]
            masks = [~np.all(v == 114, axis=-1) for v in views]
            gray_bg = [i for i, m in enumerate(masks) if not m.all()]
            use = gray_bg or list(range(len(views)))
            num, den, count = 0.0, 0, 0
            for i in use:
                g = cv2.cvtColor(views[i], cv2.COLOR_RGB2GRAY).astype(np.float32)
                mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
                m = cv2.erode(masks[i].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
                num += float(mag[m].sum())
                den += int(m.sum())
                count += len(sift.detect(g.astype(np.uint8), m.astype(np.uint8) * 255))
            g_ep.append(num / max(1, den))
            k_ep.append(count / len(use))
        grads.append(g_ep)
        kps.append(k_ep)
    return np.array(grads, np.float64), np.array(kps, np.float64)


def _subset_summary(records, keys, select, calibrated):
    sel = [r for r, k in zip(records, keys) if select(k, r)]
    return summarize(sel, calibrated) if sel else {}


def breakdowns(records, keys, episodes, textureless, calibrated):
    """by_texture and by_occlusion per N (by_size comes from evaluate.report)."""
    out = {"by_texture": {}, "by_occlusion": {}}
    ns = sorted({k[1] for k in keys})
    for n in ns:
        out["by_texture"][str(n)] = {
            name: _subset_summary(records, keys,
                                  lambda k, r, flag=flag: k[1] == n and textureless[k[0], k[3]] == flag,
                                  calibrated)
            for name, flag in (("textured", False), ("textureless", True))}
    buckets = (("unoccluded (>=90% visible)", 0.9, 1.01), ("partly (50-90%)", 0.5, 0.9),
               ("heavily (<50%)", 0.0, 0.5))
    for n in ns:
        entry = {}
        neg = [r for r, k in zip(records, keys) if k[1] == n and not r["present"]]
        for name, lo, hi in buckets:
            pos = [r for r, k in zip(records, keys) if k[1] == n and r["present"]
                   and lo <= float(episodes[k[0]]["visible_fraction"][k[2], k[3]]) < hi]
            entry[name] = summarize(pos + neg, calibrated) if pos else {}
        out["by_occlusion"][str(n)] = entry
    return out


# ----------------------------------------------------------------------------- report

def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |"
              for row in rows]
    return lines


def _bucket_tables(results, ns, breakdown, column):
    """One table per N: every method's metrics in each bucket of results[m][breakdown][N]."""
    lines = []
    for n in ns:
        rows = [[name, bucket] + [m.get(k) for k in METRICS] + [m.get("positive_pairs")]
                for name, r in results.items()
                for bucket, m in r[breakdown].get(str(n), {}).items()]
        lines += [f"### N = {n}", ""] + _table(["method", column, *METRICS, "positive_pairs"], rows) + [""]
    return lines


def verdict(results, keypoints=None):
    """The benchmark's target for the matcher, checked on these numbers: the first yolz row has >= 2x the cell AP of
    SIFT + homography and a higher presence AUROC than every other row, at every N."""
    yolz = next((n for n in results if n.startswith("yolz")), None)
    others = [n for n in results if n != yolz]
    sift = next((n for n in others if n.startswith("SIFT")), None)
    if yolz is None or not others:
        return []
    lines = ["## Target check", "",
             f"Reference row: {yolz}. Target: cell AP >= 2x SIFT + homography's and a presence "
             "AUROC above every other row (other models and the training-free probe included).", "",
             "| N | yolz cell AP | SIFT cell AP | ratio (>= 2) | yolz AUROC | best other AUROC | met |",
             "|---|---|---|---|---|---|---|"]
    met = True
    for n in sorted(results[yolz]["by_n"], key=int):
        o = {m: results[m]["by_n"].get(n, {}).get("overall", {}) for m in results}
        best_auc = max(others, key=lambda m: o[m].get("presence_auroc") or 0)
        sift_ap = o[sift].get("cell_ap") if sift else None
        ratio = (o[yolz]["cell_ap"] / sift_ap) if sift_ap else float("inf")
        beats = ratio >= 2 and o[yolz]["presence_auroc"] > o[best_auc]["presence_auroc"]
        met &= beats
        lines.append(f"| {n} | {fmt(o[yolz]['cell_ap'])} | {fmt(sift_ap)} | {ratio:.1f} | "
                     f"{fmt(o[yolz]['presence_auroc'])} | "
                     f"{fmt(o[best_auc]['presence_auroc'])} ({best_auc}) | "
                     f"{'yes' if beats else 'NO'} |")
    lines.append("")
    if sift:
        faster = results[yolz]["frame_ms_p50"] < results[sift]["frame_ms_p50"]
        lines.append(f"Latency p50 (same run, same threads): yolz {fmt(results[yolz]['frame_ms_p50'])}"
                     f" ms vs SIFT + homography {fmt(results[sift]['frame_ms_p50'])} ms per frame "
                     f"({'faster' if faster else 'slower'}).")
    lines.append(f"Target {'met' if met else 'NOT met'} in this run.")
    if keypoints is not None and len(keypoints):
        kp = np.asarray(keypoints, np.float64)
        lines += ["", f"Context for the feature-matching baselines: the reference views of these "
                  f"objects yield a median of {np.median(kp):.0f} SIFT keypoints per view "
                  f"(10th percentile {np.percentile(kp, 10):.0f})."]
    return lines + [""]


def frozen_rows(meta: dict) -> dict:
    """The retired models' rows measured on the benchmark of `meta` (same benchmark, episodes)."""
    rows = json.loads(FROZEN_ROWS.read_text())["rows"]
    return {name: row for name, row in rows.items()
            if (row["benchmark"], row["episodes"]) == (meta.get("benchmark"), meta.get("episodes"))}


def markdown(results, meta, examples, keypoints=None, frozen=None):
    names = list(results)
    ns = sorted({int(n) for r in results.values() for n in r["by_n"]})
    lines = ["# yolz vs classical reference-image baselines", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "episode_config"]
    lines += ["- every method scores the same (scene, object) pairs on the same stride-16 grid "
              "(training/evaluation/evaluate.py); baselines give raw scores (no calibration metrics)",
              "- latency: one `score` call = one scene, all episode objects (embedding excluded), "
              f"CPU with {meta.get('cpu_threads', '?')} thread(s) per method, measured in this run", ""]
    lines += ["## Overall", ""]
    rows = []
    for name, r in results.items():
        for n in ns:
            o = r["by_n"].get(str(n), {}).get("overall", {})
            rows.append([name, str(n)] + [o.get(m) for m in METRICS] + [o.get("pairs")])
    lines += _table(["method", "N", *METRICS, "pairs"], rows)
    if frozen:
        lines += ["", "Not re-run: retired models, as last measured on this benchmark "
                  "(training/evaluation/frozen_rows.json says where and when).", ""]
        rows = [[name, str(n)] + [o.get(m) for m in METRICS] + [o.get("pairs")]
                for name, r in frozen.items() for n in ns
                for o in [r["by_n"].get(str(n), {}).get("overall", {})]]
        lines += _table(["method", "N", *METRICS, "pairs"], rows)
    lines += [""] + verdict(results, keypoints)
    lines += ["## Per-frame latency (ms)", ""]
    lines += _table(["method", "p50", "p90", "mean", "frames"],
                    [[name, r["frame_ms_p50"], r["frame_ms_p90"], r["frame_ms_mean"],
                      r["frames"]] for name, r in results.items()])
    for n in ns:
        lines += ["", f"## By visible object size, N = {n} (size positives + all negatives)", ""]
        rows = []
        for name, r in results.items():
            for size, _, _ in SIZE_BUCKETS:
                m = r["by_n"].get(str(n), {}).get("by_size", {}).get(size, {})
                rows.append([name, size] + [m.get(k) for k in METRICS] + [m.get("positive_pairs")])
        lines += _table(["method", "size", *METRICS, "positive_pairs"], rows)
    lines += ["", "## Textured vs textureless query objects", "",
              f"Textureless = the reference views' mean foreground gradient magnitude below the "
              f"median over this evaluation set's episode objects ({meta['texture_median']:.2f}; "
              "gray-background views only when the object has any). Both buckets hold the "
              "positive and negative pairs of their query objects.", ""]
    lines += _bucket_tables(results, ns, "by_texture", "objects")
    lines += ["## Occlusion", ""]
    lines += ["Positives bucketed by the share of the object left visible by the objects pasted "
              "on top of it (border truncation does not count), against all negatives; the "
              "compositor counts what it painted.", ""]
    lines += _bucket_tables(results, ns, "by_occlusion", "visible")
    lines += ["", "## Plots", "", "![cell AP and presence AUROC](comparison_bars.png)", "",
              "![presence ROC and cell PR](comparison_curves.png)", ""]
    if examples:
        lines += ["## Example frames", "",
                  f"Heatmaps are each method's cell scores on a fixed 0-1 colour scale; green boxes "
                  f"are the query object's positive cells, a white cross each method's top cell. "
                  f"Reference method: {names[0]}.", ""]
        for ex in examples:
            lines += [f"- `{ex['file']}`: {ex['why']}", f"  ![]({ex['file']})"]
    return "\n".join(lines) + "\n"


def plots(results, all_records, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    ns = sorted({int(n) for r in results.values() for n in r["by_n"]})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(ns))
    x = np.arange(len(names))
    for ax, metric in zip(axes, ("cell_ap", "presence_auroc")):
        for j, n in enumerate(ns):
            vals = [results[m]["by_n"].get(str(n), {}).get("overall", {}).get(metric, np.nan)
                    for m in names]
            ax.bar(x + (j - (len(ns) - 1) / 2) * width, np.nan_to_num(vals), width, label=f"N={n}")
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "comparison_bars.png", dpi=100)
    plt.close(fig)

    n = ns[-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name in names:
        sel = [r for r in all_records[name] if r["n"] == n]
        pres = np.array([r["grid"].max() for r in sel])
        lab = np.array([r["present"] for r in sel])
        if lab.any() and not lab.all():
            fpr, tpr = roc_curve(pres, lab)
            axes[0].plot(fpr, tpr, label=name)
        cells = np.concatenate([r["grid"].ravel() for r in sel])
        labels = np.concatenate([r["targets"].ravel() for r in sel]) > 0.5
        if labels.any():
            rec, prec = pr_curve(cells, labels)
            axes[1].plot(rec, prec, label=name)
    axes[0].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate",
                title=f"presence ROC (max cell), N={n}")
    axes[1].set(xlabel="recall", ylabel="precision", title=f"cell precision-recall, N={n}")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "comparison_curves.png", dpi=100)
    plt.close(fig)


def pick_examples(all_records, keys, count):
    """(reference hit, others miss) and (reference miss, another hits) present pairs at max N."""
    names = list(all_records)
    n = max(k[1] for k in keys)
    idx = [j for j, k in enumerate(keys) if k[1] == n and all_records[names[0]][j]["present"]]
    hits = {m: np.array([bool(all_records[m][j]["targets"].flat[int(np.argmax(all_records[m][j]["grid"]))])
                         for j in idx]) for m in names}
    others = names[1:]
    if not idx:
        return []
    wins, losses = [], []
    for p, j in enumerate(idx):
        ref = hits[names[0]][p]
        n_other_hits = sum(int(hits[m][p]) for m in others)
        size = all_records[names[0]][j]["size"]
        if ref and others and n_other_hits < len(others):
            wins.append((n_other_hits, -size, j))       # prefer all others failing
        elif not ref and n_other_hits > 0:
            losses.append((-n_other_hits, -size, j))    # prefer several others succeeding
        elif not others:
            (wins if ref else losses).append((0, -size, j))
    wins.sort(), losses.sort()
    chosen, seen = [], set()

    def take(pool, k, why_fn):
        for item in pool:
            if len([c for c in chosen if c[1] == why_fn]) >= k:
                break
            j = item[2]
            scene = keys[j][:3:2]
            if scene in seen:
                continue
            seen.add(scene)
            chosen.append((j, why_fn))

    half = count // 2
    take(wins, count - min(half, len(losses)), "win")
    take(losses, count - len(chosen), "loss")
    out = []
    for j, kind in chosen:
        failed = [m for m in others if not hits[m][idx.index(j)]]
        ok = [m for m in others if hits[m][idx.index(j)]]
        why = (f"{names[0]} finds it; fails: {', '.join(failed) or '-'}" if kind == "win"
               else f"{names[0]} misses it; finds it: {', '.join(ok) or '-'}")
        out.append((j, why))
    return out


def draw_example(path, ep, key, grids, names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    e, n, b, i = key
    scene = ep["scenes"][b]
    targets = ep["targets"][b, i]
    h, w = scene.shape[:2]
    stride = h // targets.shape[0]
    views = [painted(v) for v in ep["views_a"][i, :min(n, 4)]]
    montage = np.concatenate(list(views), axis=1)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(3 * (len(names) + 1), 3.6))
    axes[0].imshow(montage)
    axes[0].set_title(f"query views (N={n})", fontsize=9)
    for ax, name in zip(axes[1:], names):
        g = grids[name]
        ax.imshow(scene)
        ax.imshow(np.kron(g, np.ones((stride, stride))), cmap="jet", alpha=0.45, vmin=0, vmax=1,
                  extent=(0, g.shape[1] * stride, g.shape[0] * stride, 0))
        for r, c in zip(*np.nonzero(targets > 0.5)):
            ax.add_patch(patches.Rectangle((c * stride, r * stride), stride, stride, fill=False,
                                           edgecolor="lime", lw=1))
        r, c = np.unravel_index(int(np.argmax(g)), g.shape)
        ax.plot([c * stride + stride / 2], [r * stride + stride / 2], "wx", ms=10, mew=2)
        hit = bool(targets[r, c] > 0.5)
        ax.set_title(f"{name}\n{'hit' if hit else 'miss'}, max {g.max():.2f}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_comparison(methods, episodes, out_dir: Path, meta: dict, n_examples: int = 6, ns=NS):
    """Evaluate every method on the same episodes; write the report files; return the results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = pair_keys(episodes, ns)
    grads, kps = texture_stats(episodes)
    median = float(np.median(grads))
    textureless = grads < median
    meta = {**meta, "texture_median": median}
    results, all_records = {}, {}
    for method in methods:
        t0 = time.perf_counter()
        records, frame_ms = evaluate(method, episodes, ns)
        if len(records) != len(keys):
            raise RuntimeError(f"{method.name}: {len(records)} records, expected {len(keys)}")
        res = report(records, frame_ms, method.calibrated)
        res.update(breakdowns(records, keys, episodes, textureless, method.calibrated))
        res.update(frame_ms_p90=float(np.percentile(frame_ms, 90)) if len(frame_ms) else None,
                   frame_ms_mean=float(np.mean(frame_ms)) if len(frame_ms) else None,
                   frames=int(len(frame_ms)), calibrated=bool(method.calibrated),
                   wall_s=time.perf_counter() - t0)
        name = method.name
        results[name], all_records[name] = res, records
        o = res["by_n"][max(res["by_n"], key=int)]["overall"]
        print(f"{name}: cell AP {fmt(o.get('cell_ap'))}, presence AUROC "
              f"{fmt(o.get('presence_auroc'))}, p50 {fmt(res['frame_ms_p50'])} ms/frame, "
              f"{res['wall_s']:.0f} s", flush=True)

    examples = []
    for k, (j, why) in enumerate(pick_examples(all_records, keys, n_examples)):
        fname = f"example_{k}.png"
        draw_example(out_dir / fname, episodes[keys[j][0]], keys[j],
                     {m: all_records[m][j]["grid"] for m in all_records}, list(all_records))
        examples.append({"file": fname, "why": why, "episode": keys[j][0], "n": keys[j][1],
                         "scene": keys[j][2], "object": keys[j][3]})
    frozen = frozen_rows(meta)
    payload = {"meta": meta, "methods": results, "frozen": frozen, "examples": examples,
               "texture": {"mean_gradient": grads.tolist(), "sift_keypoints_per_view": kps.tolist(),
                           "median_gradient": median}}
    (out_dir / "comparison.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out_dir / "comparison.md").write_text(markdown(results, meta, examples, kps.ravel(), frozen))
    plots(results, all_records, out_dir)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare yolz with the classical baselines.")
    ap.add_argument("--model", type=Path, default=Path("models/yolz_tokens"))
    ap.add_argument("--also-models", type=Path, nargs="*", default=[],
                    help="more yolz model folders scored as their own rows (e.g. a candidate)")
    ap.add_argument("--views", default="alpha", choices=["alpha", "photo"],
                    help="reference views as cut-outs or with their background")
    ap.add_argument("--limit", type=int, help="only the first LIMIT episodes")
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", type=Path, default=Path("docs/comparison"))
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--examples", type=int, default=6, help="example frames to save")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for every method (OpenCV, torch, ONNX Runtime); 1 keeps "
                         "latencies comparable and robust to other load; 0 = library defaults")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite comparison.md from the comparison.json in --out (no scoring)")
    args = ap.parse_args(argv)

    if args.report_only:
        data = json.loads((args.out / "comparison.json").read_text())
        (args.out / "comparison.md").write_text(markdown(
            data["methods"], data["meta"], data["examples"],
            np.ravel(data["texture"]["sift_keypoints_per_view"]), data.get("frozen")))
        print(f"wrote {args.out / 'comparison.md'} from comparison.json")
        return

    keys = [k.strip() for k in args.methods.split(",") if k.strip()]
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {METHODS}")
    if "yolz" in keys and not (args.model / "model.json").is_file():
        ap.error(f"no model in {args.model} (no model.json): train/export one, pass --model, or "
                 f"leave yolz out: --methods {','.join(k for k in keys if k != 'yolz')}")
    set_threads(args.threads)
    methods = [make_method(k, args.model, args.threads) for k in keys]
    if "yolz" in keys:
        at = keys.index("yolz") + 1
        methods[at:at] = [make_method("yolz", m, args.threads) for m in args.also_models]
    t0 = time.perf_counter()
    machine = machine_description()
    episodes = realbench.load(args.split, args.data_dir, views=args.views, limit=args.limit)
    meta = {"benchmark": f"real objects ({args.split}), views: {args.views}",
            "split": args.split, "episodes": len(episodes),
            "scenes": int(sum(len(e["scenes"]) for e in episodes)),
            "methods": ", ".join(m.name for m in methods), "machine": machine,
            "cpu_threads": args.threads or "library defaults",
            "objects_per_episode": int(episodes[0]["present"].shape[1]),
            "scene_size": list(episodes[0]["scenes"].shape[1:3])}
    print(f"{len(episodes)} episodes in {time.perf_counter() - t0:.1f} s", flush=True)
    run_comparison(methods, episodes, args.out, meta, args.examples)
    print(f"wrote {args.out / 'comparison.md'}")


if __name__ == "__main__":
    main()
