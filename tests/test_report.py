"""Tests for l3c_jax/evaluation/report.py and the two evaluation launchers (classical part only)."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from l3c_jax.evaluation import classical, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _row(set_label, image, method, h, w, num_bytes, theoretical_bits=None, kind="classical"):
  n = 3 * h * w
  return {"set": set_label, "image": image, "height": h, "width": w, "source_mode": "RGB",
          "method": method, "kind": kind, "num_bytes": num_bytes, "bpsp": 8 * num_bytes / n,
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
  summary = {s["method"]: s for s in report.summarize(_rows())}
  png = summary["PNG"]
  assert png["num_images"] == 2
  assert png["bpsp_mean"] == pytest.approx((8.0 + 2.0) / 2)
  assert png["bpsp_total"] == pytest.approx(8 * (300 + 7500) / (300 + 30000))
  assert png["bpsp_theoretical_mean"] is None
  ours = summary["Ours"]
  assert ours["bpsp_mean"] == pytest.approx((4.0 + 1.0) / 2)
  assert ours["bpsp_theoretical_mean"] == pytest.approx((3.6 + 0.9) / 2)
  assert ours["bpsp_theoretical_total"] == pytest.approx((1080 + 27000) / 30300)
  assert ours["num_exact"] == 2 and ours["encode_s_median"] == 0.5


def test_markdown_table_has_header_separator_and_escaped_cells():
  text = report.markdown_table(["method", "bpsp"], [["a|b", "1.000"], ["c", "2.000"]])
  lines = text.strip().split("\n")
  assert len(lines) == 4
  assert lines[0] == "| method | bpsp |"
  assert lines[1] == "|---|---:|"
  assert lines[2] == "| a\\|b | 1.000 |"
  with pytest.raises(ValueError):
    report.markdown_table(["a", "b"], [["only one"]])


def test_write_csv_and_json_round_trip(tmp_path):
  rows = _rows()
  report.write_csv(str(tmp_path / "r.csv"), rows)
  with open(tmp_path / "r.csv", newline="") as f:
    back = list(csv.DictReader(f))
  assert len(back) == len(rows)
  assert float(back[1]["bpsp"]) == pytest.approx(rows[1]["bpsp"])
  assert back[0]["bpsp_theoretical"] == ""  # None -> empty cell

  report.write_json(str(tmp_path / "r.json"),
                    {"x": float("nan"), "y": np.float32(1.5), "rows": rows})
  data = json.loads((tmp_path / "r.json").read_text())
  assert data["x"] is None and data["y"] == 1.5
  assert data["rows"][3]["num_bytes"] == 3750


def test_plot_bars_writes_png_with_one_colour_per_series(tmp_path):
  path = str(tmp_path / "bars.png")
  size = report.plot_bars(["Kodak", "CLIC"], {"PNG": [4.4, 3.9], "JPEG XL": [2.9, None]}, path,
                          title="t", size=(700, 450))
  with Image.open(path) as im:
    assert im.format == "PNG" and im.size == (700, 450) == size
    colours = {c for _, c in im.convert("RGB").getcolors(700 * 450)}
  assert report.PALETTE[0] in colours and report.PALETTE[1] in colours
  with pytest.raises(ValueError):
    report.plot_bars(["a"], {"PNG": [1.0, 2.0]}, path)


def test_plot_curve_writes_png_and_breaks_lines_at_gaps(tmp_path):
  path = str(tmp_path / "curve.png")
  size = report.plot_curve([0, 1000, 2000, 3000], {"val bpsp": [4.1, 3.6, None, 3.2],
                                                   "train bpsp": [4.3, 3.7, 3.4, 3.3]},
                           path, "step", "bpsp", "training curve")
  with Image.open(path) as im:
    assert im.size == size == (800, 480)
    colours = {c for _, c in im.convert("RGB").getcolors(800 * 480)}
  assert report.PALETTE[0] in colours and report.PALETTE[1] in colours
  with pytest.raises(ValueError):
    report.plot_curve([0, 1], {"a": [None, None]}, path)


def test_write_results_writes_all_files(tmp_path):
  paths = report.write_results(str(tmp_path / "out"), _rows(), {"sets": {"kodak": "/x"}},
                               notes=["a note"], title="Test")
  assert set(paths) == {"json", "markdown", "per_image_csv", "summary_csv", "chart"}
  data = json.loads(open(paths["json"]).read())
  assert len(data["per_image"]) == 4 and len(data["summary"]) == 2
  md = open(paths["markdown"]).read()
  assert md.startswith("# Test")
  assert "| Ours (theoretical) | 2.250 |" in md
  assert "- a note" in md
  with Image.open(paths["chart"]) as im:
    assert im.size[0] >= 700


def test_pad_to_multiple_edge_replicates():
  x = np.arange(5 * 3 * 1).reshape(5, 3, 1)
  y = report.pad_to_multiple(x, 4)
  assert y.shape == (8, 4, 1)
  np.testing.assert_array_equal(y[:5, :3], x)
  np.testing.assert_array_equal(y[7, :3, 0], x[4, :, 0])
  np.testing.assert_array_equal(y[:5, 3, 0], x[:, 2, 0])


def test_resolve_set_finds_named_candidates_sub_paths_and_absolute_dirs(tmp_path):
  (tmp_path / "DIV2K_valid_HR").mkdir()
  (tmp_path / "val" / "mcmaster").mkdir(parents=True)
  es = report.resolve_set(str(tmp_path), "div2k_val")
  assert es.label == "div2k_val" and es.directory.endswith("DIV2K_valid_HR")
  assert report.resolve_set(str(tmp_path), "val/mcmaster").label == "val/mcmaster"
  assert report.resolve_set(str(tmp_path), str(tmp_path / "val")).label == "val"
  assert report.resolve_set(str(tmp_path), "clic_pro") is None


class _FakeCoder:
  """Stands in for L3CCoder: 'codes' an image into one byte per pixel, exact round trip."""
  name = "Fake"

  def code(self, image):
    h, w = image.shape[:2]
    return {"num_bytes": h * w, "encode_s": 0.0, "decode_s": 0.0, "exact": True,
            "bits_theoretical": 6.0 * h * w, "bits_theoretical_per_scale": {"x": 6.0 * h * w}}


def test_evaluate_images_rows_for_learned_and_classical_codecs(tmp_path):
  pytest.importorskip("imagecodecs")
  rng = np.random.default_rng(1)
  Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(tmp_path / "1.png")
  Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(tmp_path / "2.png")
  paths = classical.list_images(str(tmp_path))
  rows, notes = report.evaluate_images(report.EvalSet("s", str(tmp_path)), paths, ["png"],
                                       [_FakeCoder()], progress=None)
  assert notes == []
  assert [(r["image"], r["method"]) for r in rows] == [
      ("1.png", "Fake"), ("1.png", "PNG"), ("2.png", "Fake"), ("2.png", "PNG")]
  fake = rows[0]
  assert fake["bpsp"] == pytest.approx(8 / 3) and fake["bpsp_theoretical"] == pytest.approx(2.0)
  assert fake["bpsp_theoretical_x"] == pytest.approx(2.0)
  assert rows[3]["source_mode"] == "L" and rows[3]["height"] == 8
  assert rows[1]["bpsp"] > 7.5  # uniform noise does not compress


def test_paper_numbers_csv_is_complete_and_tagged():
  rows = report.load_paper_numbers(os.path.join(REPO, "experiments", "reference",
                                                "paper_numbers.csv"))
  assert all(r["tag"] in ("C", "D", "R", "M") for r in rows)
  assert all(0 < r["bpsp"] < 10 for r in rows)
  best = report.published_value(rows, "l3c", "clic_mobile")
  assert best["tag"] == "D" and best["bpsp"] == pytest.approx(2.64)  # D beats the recalled 2.639
  assert report.published_value(rows, "JPEG2000", "div2k_val")["bpsp"] == pytest.approx(3.12)
  for key in ("openimages_val500", "clic_mobile", "clic_pro", "div2k_val"):
    assert report.published_value(rows, "L3C", key) is not None


def test_comparison_rows_put_published_numbers_beside_measured_ones():
  paper = [{"method": "PNG", "set": "kodak", "bpsp": 4.457, "tag": "M", "source": "s", "note": ""},
           {"method": "L3C", "set": "kodak", "bpsp": 3.0, "tag": "R", "source": "s", "note": ""},
           {"method": "FLIF", "set": "clic_pro", "bpsp": 2.7, "tag": "D", "source": "s",
            "note": ""}]
  summary = report.summarize(_rows())
  headers, md_rows, records = report.comparison_rows(summary, paper, ["kodak", "clic_pro"])
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
  assert report.paper_method_for_model("rgb_shared") == "RGB Shared"
  assert report.paper_method_for_model("RGB") == "RGB"
  assert report.paper_method_for_model("official") == "L3C"


def _run_script(args, cwd):
  return subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                        timeout=60)


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
  proc = _run_script([os.path.join(REPO, "experiments", "evaluate.py"), f"--data_dir={data}",
                      "--sets=tiny", "--codecs=png", "--ours=false", f"--output_dir={out}"],
                     cwd=REPO)
  assert proc.returncode == 0, proc.stderr
  results = json.loads((out / "results.json").read_text())
  assert [s["method"] for s in results["summary"]] == ["PNG"]
  assert results["summary"][0]["num_images"] == 2
  assert "| PNG |" in (out / "results.md").read_text()
  with Image.open(out / "chart.png") as im:
    assert im.format == "PNG"
  missing = _run_script([os.path.join(REPO, "experiments", "evaluate.py"), f"--data_dir={data}",
                         "--sets=nope", "--codecs=png", "--ours=false", f"--output_dir={out}"],
                        cwd=REPO)
  assert missing.returncode != 0 and "not found" in missing.stderr


def test_reproduce_table_script_skips_missing_sets_and_writes_table(tmp_path):
  pytest.importorskip("imagecodecs")
  data = _tiny_set(tmp_path)
  (data / "kodak").symlink_to(data / "tiny")
  out = tmp_path / "t1"
  proc = _run_script([os.path.join(REPO, "experiments", "reproduce_table.py"),
                      f"--data_dir={data}", "--sets=kodak,clic_mobile", "--codecs=png",
                      "--default_model=false", "--max_images=1", f"--output_dir={out}"], cwd=REPO)
  assert proc.returncode == 0, proc.stderr
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


@pytest.mark.slow  # two XLA compiles of the tiny model: ~10 s on an idle 2-core CPU
def test_l3c_coder_counts_file_bytes_and_theoretical_bits_over_unpadded_subpixels(monkeypatch):
  import types  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import l3c_jax  # pylint: disable=import-outside-toplevel
  from l3c_jax import losses  # pylint: disable=import-outside-toplevel
  from l3c_jax.models import l3c as l3c_model  # pylint: disable=import-outside-toplevel
  from l3c_jax.models.config import L3CConfig  # pylint: disable=import-outside-toplevel

  tiny_config = L3CConfig(num_channels=8, num_res_blocks=1, latent_channels=2, num_mixtures=2)
  rng = jax.random.key(0)

  params = jax.jit(lambda k: l3c_model.init_params(tiny_config, k))(rng)
  model = types.SimpleNamespace(params=params, config=tiny_config)
  # Stand-ins for the real codec: the "file" is the raw pixels plus a 4-byte header.
  monkeypatch.setattr(l3c_jax, "compress", lambda im, model=None: b"HEAD" + im.tobytes(),
                      raising=False)
  monkeypatch.setattr(l3c_jax, "decompress",
                      lambda data, model=None: np.frombuffer(data[4:], np.uint8).reshape(12, 20, 3),
                      raising=False)
  monkeypatch.setattr(report, "ours_unavailable_reason", lambda: None)
  coder = report.L3CCoder("tiny", model=model)
  image = np.random.default_rng(3).integers(0, 256, (12, 20, 3), dtype=np.uint8)
  r = coder.code(image)
  assert r["num_bytes"] == 4 + image.size and r["exact"]

  # Oracle: the same forward pass on the edge-padded 16x24 image, normalized by 3*12*20.
  x = jnp.asarray(np.pad(image, ((0, 4), (0, 4), (0, 0)), mode="edge"), jnp.float32)[None]

  @jax.jit
  def oracle(params, x):
    out = l3c_model.L3C(tiny_config).apply({"params": params}, x)
    return losses.bpsp_metrics(out, x, tiny_config, num_subpixels=image.size)[1]

  metrics = oracle(params, x)
  assert r["bits_theoretical"] / image.size == pytest.approx(float(metrics["bpsp"]), rel=1e-5)
  assert set(r["bits_theoretical_per_scale"]) == {"x", "z1", "z2", "z3"}
