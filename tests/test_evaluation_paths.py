"""One evaluation path: `l3c-jax eval`, experiments/evaluate.py and experiments/reproduce_table.py
give the same bpp and bpsp for the same gray, palette and RGB images (counting.py's rule), pixels
only (an ICC profile is not counted)."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

import launchers

from l3c_jax import cli
from l3c_jax.data import images
from l3c_jax.evaluation import counting

SIZE = (12, 10)  # H, W: not a multiple of the padding factor, so padding must not be counted


@pytest.fixture(scope="module")
def setup(tmp_path_factory, model_dir):
  root = tmp_path_factory.mktemp("paths")
  data = root / "imgs"
  data.mkdir()
  rng = np.random.default_rng(5)
  rgb = rng.integers(0, 256, SIZE + (3,), dtype=np.uint8)
  Image.fromarray(rgb).save(data / "1_rgb.png")
  Image.fromarray(rgb).convert("L").save(data / "2_gray.png")
  Image.fromarray(rgb).quantize(16).save(data / "3_palette.png")
  # The rgb image again with a 3 KB ICC profile: pixels only are counted (the classical codecs
  # are given no metadata either), so it must cost what 1_rgb.png costs.
  Image.fromarray(rgb).save(data / "4_rgb_icc.png", icc_profile=rng.bytes(3000))
  return str(model_dir), str(data), root


def _cli_rows(model_dir, data, root):
  out, err = io.StringIO(), io.StringIO()
  report = root / "cli.json"
  assert cli.main(["eval", data, "--json", str(report), "--model", model_dir],
                  out=out, err=err) == 0, err.getvalue()
  return {os.path.basename(r["file"]): r for r in json.loads(report.read_text())["per_image"]}


def _launcher_rows(results_json, method):
  rows = json.loads(open(results_json).read())["per_image"]
  return {r["image"]: r for r in rows if r["method"] == method}


@pytest.mark.slow
def test_cli_eval_evaluate_and_reproduce_table_count_the_same_bpsp(setup, capsys):
  pytest.importorskip("imagecodecs")
  model_dir, data, root = setup
  by_cli = _cli_rows(model_dir, data, root)
  assert launchers.run_main("evaluate", f"--sets={data}", f"--model={model_dir}",
                            "--model_name=tiny", "--codecs=png",
                            f"--output_dir={root / 'eval'}") == 0
  by_eval = _launcher_rows(root / "eval" / "results.json", "tiny")
  assert launchers.run_main("reproduce_table", f"--sets={data}", f"--models=tiny={model_dir}",
                            "--default_model=false", "--codecs=png",
                            f"--output_dir={root / 'table'}") == 0
  by_table = _launcher_rows(root / "table" / "results.json", "tiny")
  png = _launcher_rows(root / "eval" / "results.json", "PNG")
  capsys.readouterr()

  h, w = SIZE
  want_subpixels = {"1_rgb.png": 3 * h * w, "2_gray.png": h * w, "3_palette.png": h * w,
                    "4_rgb_icc.png": 3 * h * w}
  assert set(by_cli) == set(by_eval) == set(by_table) == set(want_subpixels)
  for name, n in want_subpixels.items():
    c, e, t = by_cli[name], by_eval[name], by_table[name]
    assert c["roundtrip_ok"] and e["exact"] and t["exact"]
    assert c["num_subpixels"] == e["num_subpixels"] == t["num_subpixels"] == n
    assert png[name]["num_subpixels"] == n  # classical codecs: same denominator
    assert c["num_bytes"] == e["num_bytes"] == t["num_bytes"]
    assert c["bpsp"] == e["bpsp"] == t["bpsp"] == pytest.approx(8 * c["num_bytes"] / n)
    assert c["bpp"] == e["bpp"] == t["bpp"] == pytest.approx(8 * c["num_bytes"] / (h * w))
    assert c["bpsp_estimated"] == pytest.approx(e["bpsp_theoretical"], rel=1e-9)
    assert e["bpsp_theoretical"] == pytest.approx(t["bpsp_theoretical"], rel=1e-9)
  assert by_eval["3_palette.png"]["mode"] == "P" and by_eval["2_gray.png"]["mode"] == "L"
  for rows in (by_cli, by_eval, by_table):  # metadata is not counted
    assert rows["4_rgb_icc.png"]["num_bytes"] == rows["1_rgb.png"]["num_bytes"]


def test_counting_rule_is_pixels_times_channels_of_the_stored_mode():
  rgb = np.zeros((4, 5, 3), np.uint8)
  pil = images.to_pil(images.from_array(rgb))
  want = {"L": 1, "1": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4}
  for mode, channels in want.items():
    image = images.from_pil(pil.convert(mode))
    assert image.num_subpixels == 20 * channels, mode
    assert counting.bits_per_subpixel(40 * channels, image) == 2.0
    assert counting.bits_per_pixel(40, image) == 2.0
