"""Tests of the figure helpers (l3c_jax/visualize.py) and experiments/bitcost.py."""

import numpy as np
from PIL import Image
import pytest

from l3c_jax import visualize
from test_sampling import SMALL, _contains, _load_script, run_script, write_small_model_and_image


def _luminance(rgb):
  rgb = np.asarray(rgb, np.float64)
  return 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]


@pytest.mark.parametrize("name", visualize.COLORMAPS)
def test_colormap_lut_is_256_colours_with_increasing_luminance(name):
  lut = visualize.colormap_lut(name)
  assert lut.shape == (256, 3) and lut.dtype == np.uint8
  lum = _luminance(lut)
  assert np.all(np.diff(lum) >= -0.5)      # perceptually ordered: dark to bright
  assert lum[-1] - lum[0] > 150


def test_colormap_lut_rejects_unknown_name():
  with pytest.raises(ValueError, match="unknown colour map"):
    visualize.colormap_lut("jet")


def test_apply_colormap_clips_to_the_range():
  lut = visualize.colormap_lut("viridis")
  values = np.array([[-5.0, 0.0, 5.0], [10.0, 20.0, np.nan]])
  out = visualize.apply_colormap(values, 0.0, 10.0, "viridis")
  assert out.shape == (2, 3, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[0, 0], lut[0])
  np.testing.assert_array_equal(out[0, 1], lut[0])
  np.testing.assert_array_equal(out[0, 2], lut[128])
  np.testing.assert_array_equal(out[1, 0], lut[255])
  np.testing.assert_array_equal(out[1, 1], lut[255])
  np.testing.assert_array_equal(out[1, 2], lut[0])   # NaN shows as the minimum


def test_upsample_nearest_repeats_blocks():
  a = np.arange(6).reshape(2, 3)
  up = visualize.upsample_nearest(a, 4)
  assert up.shape == (8, 12)
  np.testing.assert_array_equal(up[::4, ::4], a)
  np.testing.assert_array_equal(up[3, 11], a[0, 2])
  np.testing.assert_array_equal(up[4:8, 4:8], np.full((4, 4), a[1, 1]))


@pytest.mark.parametrize("shape,size,multiple,want", [
    ((30, 40), 16, 8, (16, 16)), ((30, 40), 0, 8, (24, 40)), ((12, 40), 32, 8, (8, 32)),
    ((30, 41), 25, 1, (25, 25))])
def test_center_crop_sizes(shape, size, multiple, want):
  px = np.arange(shape[0] * shape[1]).reshape(shape)
  out = visualize.center_crop(px, size, multiple)
  assert out.shape == want
  top, left = (shape[0] - want[0]) // 2, (shape[1] - want[1]) // 2
  assert out[0, 0] == px[top, left]


def test_center_crop_rejects_tiny_images():
  with pytest.raises(ValueError, match="smaller"):
    visualize.center_crop(np.zeros((5, 30, 3)), 16, 8)


def test_colorbar_has_the_width_and_the_colour_ramp():
  bar = visualize.colorbar(200, 0.0, 12.0, "inferno", label="bits")
  assert bar.shape[1] == 200 and bar.shape[0] > 20 and bar.dtype == np.uint8
  row = bar[6, 10:190]                                 # through the middle of the bar
  lum = _luminance(row)
  assert lum[-1] - lum[0] > 150 and np.all(np.diff(lum) >= -1)
  wide = visualize.colorbar(20, 0.0, 1.0, label="a long label that needs room")
  assert wide.shape[1] > 20                            # grown so the label is not cut


def test_stack_vertical_centres_parts():
  a = np.zeros((2, 4, 3), np.uint8)
  b = np.full((3, 2, 3), 7, np.uint8)
  out = visualize.stack_vertical([a, b], gap=1)
  assert out.shape == (6, 4, 3)
  np.testing.assert_array_equal(out[3:6, 1:3], b)
  np.testing.assert_array_equal(out[2], np.full((4, 3), 255))


def test_labeled_grid_places_every_cell_once():
  rng = np.random.default_rng(0)
  cells = [[rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(3)],
           [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), None,
            rng.integers(0, 256, (14, 8, 3), dtype=np.uint8)]]
  img = visualize.labeled_grid(cells, column_titles=["a", "b\nsecond line", "c"],
                               row_titles=["row 1", "row 2"], title="title")
  fig = np.asarray(img)
  assert img.mode == "RGB"
  assert fig.shape[1] >= 3 * 12 and fig.shape[0] >= 10 + 14
  for row in cells:
    for cell in row:
      if cell is not None:
        assert _contains(fig, cell)


def test_bitcost_script_writes_image_and_heat_maps(tmp_path, capsys):
  model_dir, image, crop = write_small_model_and_image(tmp_path)
  out = str(tmp_path / "bits.png")
  run_script("bitcost", model_dir, image, out, "--cmap=viridis")
  text = capsys.readouterr().out
  assert "bpsp = x " in text and " z1 " in text and "z2 uniform" in text
  with Image.open(out) as im:
    fig = np.asarray(im.convert("RGB"))
  assert _contains(fig, crop)
  # image + one heat map per predicted scale (x, z1 for S = 2), each 16 wide
  assert fig.shape[1] >= (1 + SMALL.num_scales) * 16
  lut = {tuple(c) for c in visualize.colormap_lut("viridis")}
  heat_like = sum(tuple(p) in lut for p in fig.reshape(-1, 3)[::7])
  assert heat_like > 2 * 16 * 16 / 7 * 0.5   # the heat maps' pixels are viridis colours


def test_bitcost_maps_sum_to_the_bits_of_each_scale():
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from conftest import random_params  # pylint: disable=import-outside-toplevel
  mod = _load_script("bitcost")
  x = jnp.asarray(np.random.default_rng(2).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  maps, bpsp = mod.bit_maps(SMALL, random_params(SMALL), x)
  assert [m.shape for m in maps] == [(16, 16)] * SMALL.num_scales
  n = 3 * 16 * 16
  np.testing.assert_allclose(maps[0].sum() / n, bpsp["x"], rtol=1e-5)
  # z1 positions cover 2x2 pixels: the upsampled map counts each position's bits 4 times
  np.testing.assert_allclose(maps[1].sum() / 4 / n, bpsp["z1"], rtol=1e-5)
  np.testing.assert_array_equal(maps[1][::2, ::2], maps[1][1::2, 1::2])
  assert bpsp["z2"] == pytest.approx(SMALL.latent_channels * np.log2(25) / (3 * 16))
