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
    variant = json.loads(json.dumps(real))
    variant["meta"]["method"] = "yolz (toy@0123) + 2x tiles"
    overall = variant["alpha"]["by_n"]["8"]["overall"]
    overall["presence_auroc"] = 0.9123
    (model / "variants").mkdir()
    (model / "variants" / "zoom_2x.json").write_text(json.dumps(variant))
    text = model_report.build(model)
    section = text[text.index("### Variants measured"):]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    shipped = real["alpha"]["by_n"]["8"]["overall"]["presence_auroc"]
    assert rows[1].startswith(f"| one pass (shipped) | {shipped:.3f} |")
    assert rows[2].startswith("| + 2x tiles | 0.912 |")
