"""Detection metrics on per-cell score grids, shared by yolz and every baseline (numpy only).

Inputs are flat arrays gathered over (scene, query) pairs; a query of an object absent from the scene
is a negative pair, so presence metrics measure false alarms as well as hits.
"""
import numpy as np

from yolz_ros.runtime.geometry import box_iou


def tie_counts(scores, labels):
    """(true positives, false positives) counted down the ranking, one point per distinct score:
    tied scores are ranked together, so no order among them can flatter a metric. Also the number
    of positives."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    return np.cumsum(labels)[last_of_tie], np.cumsum(~labels)[last_of_tie], int(labels.sum())


def average_precision(scores, labels):
    """Area under the precision-recall curve as a step sum (sklearn's definition). NaN if no positives."""
    tp, fp, n_pos = tie_counts(scores, labels)
    if n_pos == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def pr_curve(scores, labels):
    """(recall, precision), one point per distinct score."""
    tp, fp, n_pos = tie_counts(scores, labels)
    return tp / max(1, n_pos), tp / np.maximum(1, tp + fp)


def roc_curve(scores, labels):
    tp, fp, _ = tie_counts(scores, labels)
    tps, fps = np.r_[0, tp], np.r_[0, fp]
    return fps / max(1, fps[-1]), tps / max(1, tps[-1])


def auroc(scores, labels):
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        return float("nan")
    fpr, tpr = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def fpr_at_tpr(scores, labels, tpr_target=0.95):
    """The lowest false-positive rate at which at least `tpr_target` of the positives are found."""
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        return float("nan")
    fpr, tpr = roc_curve(scores, labels)
    return float(fpr[np.argmax(tpr >= tpr_target)])


def expected_calibration_error(probs, labels, bins=10):
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(probs[sel].mean() - labels[sel].mean())
    return float(ece)


def summarize(pairs, calibrated=True):
    """Metrics over a list of (scene, query) records.

    Each record: {"grid": float [r, c] scores, "targets": {0,1} [r, c], "present": bool,
    "valid": bool [r, c] (cells on the image, not on letterbox padding)}.
    Probabilities (calibrated=True) also get calibration numbers; raw similarity scores do not.
    """
    if not pairs:
        return {}
    cell_scores = np.concatenate([p["grid"][p["valid"]] for p in pairs])
    cell_labels = np.concatenate([p["targets"][p["valid"]] for p in pairs]).astype(bool)
    presence = np.array([p["grid"][p["valid"]].max() for p in pairs])
    present = np.array([p["present"] for p in pairs], bool)
    hits = [bool(p["targets"].flat[np.argmax(np.where(p["valid"], p["grid"], -np.inf))])
            for p in pairs if p["present"]]
    out = {
        "pairs": len(pairs),
        "positive_pairs": int(present.sum()),
        "cell_ap": average_precision(cell_scores, cell_labels),
        "presence_auroc": auroc(presence, present),
        "fpr_at_95_tpr": fpr_at_tpr(presence, present, 0.95),
        "pointing_accuracy": float(np.mean(hits)) if hits else float("nan"),
    }
    if calibrated:
        out["cell_ece"] = expected_calibration_error(cell_scores, cell_labels)
        out["presence_brier"] = float(np.mean((presence - present) ** 2))
    return out


IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))


def box_metrics(queries, iou_thresholds=IOU_THRESHOLDS):
    """Box AP of decoded detections, COCO-style, over (scene, object) queries.

    queries: [(detections [(score, x0, y0, x1, y1)], visible box or None)]; an absent object's
    detections are all false alarms; of a present object's, only the first (highest-scoring)
    detection with IoU >= t is a hit at t. AP at t = area under the precision-recall curve with
    recall over every present object (missed ones included). Also the IoU of the top detection
    with the visible box, over the present objects that have a detection, and their share."""
    dets = [(d[0], q) for q, (ds, _) in enumerate(queries) for d in ds]
    n_gt = sum(gt is not None for _, gt in queries)
    top = [box_iou(ds[0][1:], gt) for ds, gt in queries if gt is not None and ds]
    out = {"box_objects": n_gt, "detected_share": len(top) / n_gt if n_gt else None,
           "top_box_iou_median": float(np.median(top)) if top else None,
           "top_box_iou_mean": float(np.mean(top)) if top else None}
    if not n_gt:
        return out
    order = sorted(range(len(dets)), key=lambda i: -dets[i][0])
    flat = [(q, d) for q, (ds, _) in enumerate(queries) for d in ds]
    aps = {}
    for t in iou_thresholds:
        matched, hits = set(), []
        for i in order:
            q, d = flat[i]
            gt = queries[q][1]
            hit = gt is not None and q not in matched and box_iou(d[1:], gt) >= t
            if hit:
                matched.add(q)
            hits.append(hit)
        hits = np.asarray(hits, bool)
        tp, fp = np.cumsum(hits), np.cumsum(~hits)
        precision = tp / np.maximum(tp + fp, 1)
        recall = tp / n_gt
        # the precision envelope (COCO / VOC all-point interpolation)
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        aps[float(t)] = float(np.sum(np.diff(np.r_[0.0, recall]) * envelope))
    out.update(box_ap50=aps[0.5], box_ap=float(np.mean(list(aps.values()))),
               box_ap75=aps.get(0.75))
    return out
