"""The model report is built from the model folder's JSON: its numbers are the files' numbers."""
import json
import shutil
from pathlib import Path

from training.evaluation import model_report

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "yolz_tokens"


def test_report_tables_variants_from_their_files(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.json", "evaluation_real.json", "decisions.json"):
        shutil.copy(SHIPPED / name, model / name)
    assert "Variants measured" not in model_report.build(model)  # none measured: no table
    real = json.loads((SHIPPED / "evaluation_real.json").read_text())
    model_id = json.loads((SHIPPED / "model.json").read_text())["model_id"]
    (model / "variants").mkdir()
    for name, measured_on, auroc in (("zoom_2x", model_id, 0.9123),
                                     ("zoom_old", "toy@0123", 0.8771)):
        variant = json.loads(json.dumps(real))
        variant["meta"]["method"] = f"yolz ({measured_on}) + 2x tiles"
        variant["alpha"]["by_n"]["8"]["overall"]["presence_auroc"] = auroc
        (model / "variants" / f"{name}.json").write_text(json.dumps(variant))
    text = model_report.build(model)
    section = text[text.index("### Variants measured"):]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    shipped = real["alpha"]["by_n"]["8"]["overall"]["presence_auroc"]
    assert rows[1].startswith(f"| one pass (shipped) | {shipped:.3f} |")
    assert rows[2].startswith("| + 2x tiles | 0.912 |")
    # a variant measured on another model says so
    assert rows[3].startswith("| + 2x tiles (measured on the previous model toy@0123) | 0.877 |")


def test_report_tables_the_ablations_from_their_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.json", "evaluation_real.json"):
        shutil.copy(SHIPPED / name, model / name)
    assert "v3 ablations" not in model_report.build(model)
    run = {"name": "small", "change": "+ small ones", "best_step": 400, "steps": 500,
           "val": {"presence_auroc": 0.8512, "presence_auroc < 40 px": 0.7111},
           "test": {"presence_auroc": 0.8423, "cell_ap": 0.5012}}
    layout = {"run": "runs/x", "step": 500, "features": "f", "layout_auroc": 0.6312,
              "layout_mean_present": 0.3, "layout_mean_absent": 0.2, "weights_chosen": [0.1, 0.2],
              "by_height": {"all": {"positives": 9, "presence_auroc": 0.81,
                                    "presence_auroc_with_layout": 0.8234, "fpr_at_95_tpr": 0.5,
                                    "fpr_at_95_tpr_with_layout": 0.4}}}
    sizes = {"train": {"instances": 7, "< 40 px": 0.17, "40-60 px": 0.2, ">= 60 px": 0.63,
                       "< 20 px": 0.01, "median px": 88.0}}
    runtime = {"label": "candidate 720x960", "method": "yolz (c720@1)", "frame_ms_p50": 140.2,
               "overall": {"presence_auroc": 0.9012, "cell_ap": 0.6},
               "by_height": {"< 40 px": {"presence_auroc": 0.7543}}}
    (model / "ablation_v3.json").write_text(json.dumps(
        {"machine": "m", "runs": [run], "sizes": sizes, "layout": [layout],
         "runtime": [runtime]}))
    text = model_report.build(model)
    section = text[text.index("## v3 ablations"):]
    assert "| small | + small ones | val | 400 / 500 | 0.851 |" in section
    assert "|  |  | test | 400 / 500 | 0.842 |" in section and "0.501" in section
    assert "0.711" in section and "AUROC 0.631" in section and "0.823" in section
    assert "| train | 7 | 0.170 | 0.200 | 0.630 |" in section
    assert "| candidate 720x960 (yolz (c720@1)) | 0.901 | – |" in section
    assert "| 0.754 | – | – | 140.200 |" in section


def test_report_tables_the_search_options_from_their_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.json", "evaluation_real.json"):
        shutil.copy(SHIPPED / name, model / name)
    assert "Search options" not in model_report.build(model)
    meta = {"command": "python -m training.evaluation.search_variants", "machine": "toy",
            "threads": 1, "model": json.loads((SHIPPED / "model.json").read_text())["model_id"]}
    rows = [{"look_closer": 2, "negative_views": 0, "presence_auroc": 0.8811},
            {"look_closer": 0, "negative_views": 1, "fpr_at_95_tpr siblings": 0.4321}]
    (model / "search").mkdir()
    (model / "search" / "test.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    text = model_report.build(model)
    section = text[text.index("### Search options (test)"):].split("\n### ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| look_closer 2 | 0.881 |")
    assert lines[2].startswith("| 1 negative view(s) | – | – | – | – | – | 0.432 |")
    assert "measured on the previous model" not in section
    (model / "search" / "test.json").write_text(json.dumps({"meta": {**meta, "model": "v0@1"},
                                                            "rows": rows}))
    assert "(test): look_closer and negative views (N = 8, alpha views) (measured on the " \
        "previous model v0@1)" in model_report.build(model)
