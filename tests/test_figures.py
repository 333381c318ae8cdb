"""Tests of l3c_jax/figures.py (the data behind each figure) and the figure launchers."""

import os
import subprocess
import sys

from absl import flags
import numpy as np
from PIL import Image
import pytest

import launchers

from l3c_jax import figures

from test_sampling import SMALL, run_script, spy_on, write_small_model_and_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_png(path):
  with Image.open(path) as im:
    return im.format == "PNG"


def test_bar_chart_keeps_one_colour_per_method_across_charts(tmp_path):
  a = figures.bar_chart(["Kodak", "CLIC"], {"PNG": [4.4, 3.9], "ours": [3.1, None]},
                        str(tmp_path / "a.png"))
  b = figures.bar_chart(["Kodak"], {"JPEG XL": [2.9], "ours (actual)": [3.0],
                                    "ours (theoretical)": [2.95], "PNG": [4.4]},
                        str(tmp_path / "b.png"))
  assert _is_png(a.path) and _is_png(b.path)
  assert a.colors["PNG"] == b.colors["PNG"] == figures.FIXED_COLORS["PNG"]
  assert a.colors["ours"] == b.colors["ours (actual)"] == b.colors["ours (theoretical)"]
  assert len(set(b.colors[k] for k in ("JPEG XL", "ours (actual)", "PNG"))) == 3
  assert a.labels == ["PNG", "ours"] and np.isnan(a.values["ours"][1])
  np.testing.assert_array_equal(a.values["PNG"], [4.4, 3.9])
  with pytest.raises(ValueError):
    figures.bar_chart(["a"], {"PNG": [1.0, 2.0]}, str(tmp_path / "c.png"))


def test_bar_axis_shows_the_differences_not_the_common_part():
  lo, hi = figures.bar_limits(np.array([3.10, 3.17, 3.40, np.nan]))
  assert 2.9 < lo < 3.10 and 3.40 < hi < 3.6  # spread 0.3: the axis starts near the bars
  assert figures.bar_limits(np.array([0.1, 4.0]))[0] == 0.0  # never below zero
  assert figures.bar_limits(np.array([np.nan])) == (0.0, 1.0)


def test_line_chart_skips_missing_points_and_exposes_limits(tmp_path):
  chart = figures.line_chart([0, 1000, 2000, 3000], {"val bpsp": [4.1, 3.6, None, 3.2],
                                                     "train bpsp": [4.3, 3.7, 3.4, 3.3]},
                             str(tmp_path / "curve.png"), title="t")
  assert _is_png(chart.path) and chart.labels == ["val bpsp", "train bpsp"]
  assert np.isnan(chart.values["val bpsp"][2])
  assert chart.ylim[0] <= 3.2 and chart.ylim[1] >= 4.3 and chart.xlim[1] >= 3000
  assert chart.colors["val bpsp"] != chart.colors["train bpsp"]
  with pytest.raises(ValueError):
    figures.line_chart([0, 1], {"a": [None, None]}, str(tmp_path / "x.png"))


def test_heat_maps_and_image_grid_write_pngs(tmp_path):
  img = np.zeros((8, 8, 3), np.uint8)
  heat = figures.heat_maps(img, [np.ones((8, 8))], ["img", "x"], ["bits"], [2.0],
                           str(tmp_path / "h.png"), title="t")
  assert _is_png(heat.path) and heat.labels == ["img", "x"]
  with pytest.raises(ValueError):
    figures.heat_maps(img, [np.ones((8, 8))], ["img"], ["bits"], [2.0], str(tmp_path / "h.png"))
  grid = figures.image_grid([[img, None], [img, img]], str(tmp_path / "g.png"),
                            column_titles=["a", "b"], row_titles=["1", "2"])
  assert _is_png(grid.path) and grid.labels == ["a", "b"]


def test_upsample_nearest_repeats_each_value():
  a = np.array([[1, 2], [3, 4]])
  up = figures.upsample_nearest(a, 4)
  assert up.shape == (8, 8)
  np.testing.assert_array_equal(up[:4, :4], 1)
  np.testing.assert_array_equal(up[4:, 4:], 4)


def test_bitcost_script_draws_the_maps_of_every_predicted_scale(tmp_path, capsys, monkeypatch):
  model_dir, image, crop = write_small_model_and_image(tmp_path)
  out = str(tmp_path / "bits.png")
  calls = spy_on(monkeypatch, figures, "heat_maps")
  run_script("bitcost", model_dir, image, out, "--cmap=viridis")
  text = capsys.readouterr().out
  assert "bpsp = x " in text and " z1 " in text and "z2 uniform" in text
  (pixels, maps, titles, units, tops, path), kwargs, chart = calls[0]
  np.testing.assert_array_equal(pixels, crop)
  assert [m.shape for m in maps] == [(16, 16)] * SMALL.num_scales
  assert len(titles) == 1 + SMALL.num_scales and titles[1].startswith("x: ")
  assert all(t > 0 for t in tops) and kwargs["cmap"] == "viridis"
  assert path == out and _is_png(out)


def test_bitcost_maps_sum_to_the_bits_of_each_scale():
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from conftest import random_params  # pylint: disable=import-outside-toplevel
  mod = launchers.load("bitcost")
  x = jnp.asarray(np.random.default_rng(2).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  maps, bpsp, scales = mod.bit_maps(SMALL, random_params(SMALL), x)
  assert list(maps) == ["x", "z1"] and list(bpsp) == ["x", "z1", "z2"]
  assert scales == {"x": 0, "z1": 1, "z2": 2}
  assert [m.shape for m in maps.values()] == [(16, 16)] * SMALL.num_scales
  n = 3 * 16 * 16
  np.testing.assert_allclose(maps["x"].sum() / n, bpsp["x"], rtol=1e-5)
  # z1 positions cover 2x2 pixels: the upsampled map counts each position's bits 4 times
  np.testing.assert_allclose(maps["z1"].sum() / 4 / n, bpsp["z1"], rtol=1e-5)
  np.testing.assert_array_equal(maps["z1"][::2, ::2], maps["z1"][1::2, 1::2])


def test_bitcost_maps_of_an_interlaced_pyramid_put_the_phases_back_on_the_grid():
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from conftest import random_params  # pylint: disable=import-outside-toplevel
  from l3c_jax.models.config import RGBInterlacedConfig  # pylint: disable=import-outside-toplevel
  cfg = RGBInterlacedConfig(num_scales=2, num_channels=4, num_res_blocks=1, num_mixtures=2)
  mod = launchers.load("bitcost")
  x = jnp.asarray(np.random.default_rng(2).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  maps, bpsp, _ = mod.bit_maps(cfg, random_params(cfg), x)
  assert list(maps) == ["x", "x1"] and list(bpsp) == ["x", "x1", "x2"]
  n = 3 * 16 * 16
  np.testing.assert_allclose(maps["x"].sum() / n, bpsp["x"], rtol=1e-5)
  assert np.all(maps["x"][::2, ::2] == 0) and maps["x"][1::2, 1::2].min() > 0  # phase 0 free


@pytest.mark.parametrize("name,own", [
    ("sample", {"seed", "num_samples", "image", "crop", "model", "output"}),
    ("bitcost", {"cmap", "percentile", "image", "crop", "model", "output"}),
    ("evaluate", {"model_name", "ours", "data_dir", "sets", "codecs", "output_dir",
                  "max_images"}),
    ("reproduce_table", {"models", "paper_numbers", "data_dir", "sets", "codecs",
                         "output_dir", "max_images"}),
])
def test_launcher_help_lists_its_own_and_its_shared_flags(name, own):
  """What `--help` prints: the key flags of the main module (absl), shared ones adopted."""
  mod = launchers.load(name)
  key_flags = {f.name for f in flags.FLAGS.get_key_flags_for_module(mod.__name__)}
  assert own <= key_flags


def test_help_of_a_real_run_lists_the_shared_figure_flags():
  r = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "bitcost.py"), "--help"],
                     capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert "--crop" in r.stdout and "--percentile" in r.stdout, r.stdout + r.stderr
