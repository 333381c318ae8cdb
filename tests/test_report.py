"""Tests of the evaluation's runner, tables and writers (l3c_jax/evaluation) and its launchers."""

import csv
import json
import math
import os

from absl import app
import numpy as np
import pytest

import launchers
from PIL import Image

from l3c_jax.data import images
from l3c_jax.evaluation import runner, sets, tables, writers


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _row(set_label, image, method, h, w, num_bytes, theoretical_bits=None, kind="classical"):
  n = 3 * h * w
  return {"set": set_label, "image": image, "height": h, "width": w, "mode": "RGB",
          "num_subpixels": n, "method": method, "kind": kind, "num_bytes": num_bytes,
          "bpp": 8 * num_bytes / (h * w), "bpsp": 8 * num_bytes / n,
          "bpsp_theoretical": None if theoretical_bits is None else theoretical_bits / n,
          "encode_s": 0.5, "decode_s": 0.1, "exact": True}


def _rows():
  # A small image at 8 bpsp and a large one at 2 bpsp: the mean of per-image bpsp (5) and the
  # total-bits figure (dominated by the large image) differ.
  return [
      _row("kodak", "a.png", "PNG", 10, 10, 300),            # 8 bpsp, 300 sub-pixels
      _row("kodak", "b.png", "PNG", 100, 100, 7500),         # 2 bpsp, 30000 sub-pixels
      _row("kodak", "a.png", "Ours", 10, 10, 150, theoretical_bits=1080, kind="learned"),
      _row("kodak", "b.png", "Ours", 100, 100, 3750, theoretical_bits=27000, kind="learned"),
  ]


def test_summarize_reports_mean_of_images_and_total_bits_over_subpixels():
  summary = {s["method"]: s for s in tables.summarize(_rows())}
  png = summary["PNG"]
  assert png["num_images"] == 2
  assert png["bpsp_mean"] == pytest.approx((8.0 + 2.0) / 2)
  assert png["bpsp_total"] == pytest.approx(8 * (300 + 7500) / (300 + 30000))
  assert png["bpp_mean"] == pytest.approx((24.0 + 6.0) / 2)
  assert png["bpp_total"] == pytest.approx(8 * (300 + 7500) / (100 + 10000))
  assert png["bpsp_theoretical_mean"] is None
  ours = summary["Ours"]
  assert ours["bpsp_mean"] == pytest.approx((4.0 + 1.0) / 2)
  assert ours["bpsp_theoretical_mean"] == pytest.approx((3.6 + 0.9) / 2)
  assert ours["bpsp_theoretical_total"] == pytest.approx((1080 + 27000) / 30300)
  assert ours["num_exact"] == 2 and ours["encode_s_median"] == 0.5


def test_markdown_table_has_header_separator_and_escaped_cells():
  text = tables.markdown_table(["method", "bpsp"], [["a|b", "1.000"], ["c", "2.000"]])
  lines = text.strip().split("\n")
  assert len(lines) == 4
  assert lines[0] == "| method | bpsp |"
  assert lines[1] == "|---|---:|"
  assert lines[2] == "| a\\|b | 1.000 |"
  with pytest.raises(ValueError):
    tables.markdown_table(["a", "b"], [["only one"]])


def test_write_csv_and_json_round_trip(tmp_path):
  rows = _rows()
  writers.write_csv(str(tmp_path / "r.csv"), rows)
  with open(tmp_path / "r.csv", newline="") as f:
    back = list(csv.DictReader(f))
  assert len(back) == len(rows)
  assert float(back[1]["bpsp"]) == pytest.approx(rows[1]["bpsp"])
  assert back[0]["bpsp_theoretical"] == ""  # None -> empty cell

  writers.write_json(str(tmp_path / "r.json"),
                    {"x": float("nan"), "y": np.float32(1.5), "rows": rows})
  data = json.loads((tmp_path / "r.json").read_text())
  assert data["x"] is None and data["y"] == 1.5
  assert data["rows"][3]["num_bytes"] == 3750


def test_write_results_writes_all_files(tmp_path):
  paths = writers.write_results(str(tmp_path / "out"), _rows(), {"sets": {"kodak": "/x"}},
                                notes=["a note"], title="Test")
  assert set(paths) == {"json", "markdown", "per_image_csv", "summary_csv", "chart"}
  data = json.loads(open(paths["json"]).read())
  assert len(data["per_image"]) == 4 and len(data["summary"]) == 2
  md = open(paths["markdown"]).read()
  assert md.startswith("# Test")
  assert "| Ours (theoretical) | 2.250 |" in md
  assert "- a note" in md
  with Image.open(paths["chart"]) as im:
    assert im.format == "PNG"


def test_resolve_set_finds_named_candidates_sub_paths_and_absolute_dirs(tmp_path):
  (tmp_path / "DIV2K_valid_HR").mkdir()
  (tmp_path / "val" / "mcmaster").mkdir(parents=True)
  es = sets.resolve_set(str(tmp_path), "div2k_val")
  assert es.label == "div2k_val" and es.directory.endswith("DIV2K_valid_HR")
  assert sets.resolve_set(str(tmp_path), "val/mcmaster").label == "val/mcmaster"
  assert sets.resolve_set(str(tmp_path), str(tmp_path / "val")).label == "val"
  assert sets.resolve_set(str(tmp_path), "clic_pro") is None


def test_evaluate_images_rows_count_classical_codecs_in_the_stored_mode(tmp_path):
  pytest.importorskip("imagecodecs")
  rng = np.random.default_rng(1)
  Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(tmp_path / "1.png")
  Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(tmp_path / "2.png")
  (tmp_path / "3.png").write_bytes(b"not a png")
  paths = images.list_images(str(tmp_path))
  rows, notes = runner.evaluate_images(sets.EvalSet("s", str(tmp_path)), paths, ["png"],
                                       progress=None)
  assert len(notes) == 1 and "3.png" in notes[0]
  assert [(r["image"], r["method"]) for r in rows] == [("1.png", "PNG"), ("2.png", "PNG")]
  gray = rows[1]
  assert gray["mode"] == "L" and gray["num_subpixels"] == 64  # one sub-pixel per gray pixel
  assert gray["bpsp"] == pytest.approx(8 * gray["num_bytes"] / 64) == gray["bpp"]
  assert rows[0]["bpsp"] == pytest.approx(rows[0]["bpp"] / 3)
  assert rows[0]["bpsp"] > 7.5  # uniform noise does not compress


def test_paper_numbers_csv_is_complete_and_tagged():
  rows = tables.load_paper_numbers(os.path.join(REPO, "experiments", "reference",
                                                "paper_numbers.csv"))
  assert all(r["tag"] in ("C", "D", "R", "M") for r in rows)
  assert all(0 < r["bpsp"] < 10 for r in rows)
  best = tables.published_value(rows, "l3c", "clic_mobile")
  assert best["tag"] == "D" and best["bpsp"] == pytest.approx(2.64)  # D beats the recalled 2.639
  assert tables.published_value(rows, "JPEG2000", "div2k_val")["bpsp"] == pytest.approx(3.12)
  for key in ("openimages_val500", "clic_mobile", "clic_pro", "div2k_val"):
    assert tables.published_value(rows, "L3C", key) is not None


def test_comparison_rows_put_published_numbers_beside_measured_ones():
  paper = [{"method": "PNG", "set": "kodak", "bpsp": 4.457, "tag": "M", "source": "s", "note": ""},
           {"method": "L3C", "set": "kodak", "bpsp": 3.0, "tag": "R", "source": "s", "note": ""},
           {"method": "FLIF", "set": "clic_pro", "bpsp": 2.7, "tag": "D", "source": "s",
            "note": ""}]
  summary = tables.summarize(_rows())
  headers, md_rows, records = tables.comparison_rows(summary, paper, ["kodak", "clic_pro"])
  assert headers == ["method", "Kodak ours", "Kodak paper", "CLIC.pro ours", "CLIC.pro paper"]
  by_label = {r[0]: r for r in md_rows}
  assert by_label["PNG"][1:3] == ["5.000", "4.457 [M]"]
  # "Ours" is compared with the paper's L3C row; its theoretical row has no published cell.
  assert by_label["Ours (actual)"][1:3] == ["2.500", "3.000 [R]"]
  assert by_label["Ours (theoretical)"][1:3] == ["2.250", ""]
  assert by_label["FLIF (published)"][3:5] == ["", "2.700 [D]"]
  assert "L3C (published)" not in by_label
  kinds = {(r["method"], r["kind"]) for r in records}
  assert ("Ours", "theoretical") in kinds and ("FLIF", "published") in kinds


def test_paper_method_for_model_maps_rgb_baselines():
  assert tables.paper_method_for_model("rgb_shared") == "RGB Shared"
  assert tables.paper_method_for_model("RGB") == "RGB"
  assert tables.paper_method_for_model("official") == "L3C"




def _tiny_set(root):
  d = root / "data" / "tiny"
  d.mkdir(parents=True)
  rng = np.random.default_rng(2)
  for i in range(2):
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")
  return root / "data"


def test_evaluate_script_writes_json_markdown_and_chart(tmp_path):
  pytest.importorskip("imagecodecs")
  data = _tiny_set(tmp_path)
  out = tmp_path / "out"
  assert launchers.run_main("evaluate", f"--data_dir={data}", "--sets=tiny", "--codecs=png",
                            "--ours=false", f"--output_dir={out}") == 0
  results = json.loads((out / "results.json").read_text())
  assert [s["method"] for s in results["summary"]] == ["PNG"]
  assert results["summary"][0]["num_images"] == 2
  assert "| PNG |" in (out / "results.md").read_text()
  with Image.open(out / "chart.png") as im:
    assert im.format == "PNG"
  with pytest.raises(app.UsageError, match="not found"):
    launchers.run_main("evaluate", f"--data_dir={data}", "--sets=nope", "--codecs=png",
                       "--ours=false", f"--output_dir={out}")


def test_reproduce_table_script_skips_missing_sets_and_writes_table(tmp_path):
  pytest.importorskip("imagecodecs")
  data = _tiny_set(tmp_path)
  (data / "kodak").symlink_to(data / "tiny")
  out = tmp_path / "t1"
  assert launchers.run_main("reproduce_table", f"--data_dir={data}", "--sets=kodak,clic_mobile",
                            "--codecs=png", "--default_model=false",
                            "--max_images=1", f"--output_dir={out}") == 0
  table = (out / "table.md").read_text()
  assert "| method | Kodak ours | Kodak paper | CLIC.mobile ours | CLIC.mobile paper |" in table
  assert "4.457 [M]" in table  # published PNG on Kodak beside the measured one
  assert "set 'clic_mobile' not found" in table
  with open(out / "table.csv", newline="") as f:
    records = list(csv.DictReader(f))
  measured = [r for r in records if r["kind"] == "actual"]
  assert len(measured) == 1 and measured[0]["num_images"] == "1"
  assert not math.isnan(float(measured[0]["bpsp_mean"]))
  assert (out / "chart.png").exists()
