"""The codec's fast paths give the bytes of the plain ones, and the progress hook.

- The encoder codes HEAD steps from each symbol's interval with 3-entry tables
  (`tables.interval_tables`, `exact_tables.*_intervals`) instead of whole tables: same bytes.
- The decoder reads pixel channels pipelined (`codec.DECODE_PIPELINED`); tiles are coded in
  threads (`codec.MAX_TILE_THREADS`): same bytes and pixels as one channel / tile at a time.
- `codec.encode(..., progress=)` / `codec.decode(..., progress=)` report cumulative work units
  and end at the total.
Small shapes (13x19, 21x35, 7x9) as in tests/test_codec.py, so little is compiled.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import model_io
from l3c_jax.coding import codec
from l3c_jax.coding import entropy
from l3c_jax.coding import exact_tables
from l3c_jax.coding import tables
from l3c_jax.data import images
from l3c_jax.models.config import RGBInterlacedConfig


@pytest.fixture(scope="module")
def l3c_model(tiny_config, tiny_params):
  return model_io.Model(tiny_config, tiny_params)


@pytest.fixture(scope="module")
def pyramid_model():
  cfg = RGBInterlacedConfig(num_channels=8, num_res_blocks=1, num_mixtures=2)
  return model_io.random_model(cfg, broad_heads=True)


def _random_tables(rng, n: int, num_bins: int, kind: str) -> np.ndarray:
  """[n, A] int64 frequencies q >= 1 summing to 2^24: peaked, flat, or point masses."""
  total = tables.TOTAL_FREQUENCY
  if kind == "point":
    p = np.full((n, num_bins), 1e-12)
    p[np.arange(n), rng.integers(0, num_bins, n)] = 1.0
  else:
    p = rng.dirichlet(np.full(num_bins, 0.05 if kind == "peaked" else 5.0), n)
  q = np.floor(p * (total - num_bins)).astype(np.int64) + 1
  q[np.arange(n), np.argmax(q, 1)] += total - q.sum(1)
  return q


@pytest.mark.parametrize("num_bins", [3, 25, 256])
@pytest.mark.parametrize("kind", ["peaked", "flat", "point"])
def test_interval_tables_code_to_the_bytes_of_whole_tables(num_bins, kind):
  rng = np.random.default_rng(num_bins)
  n = 3000
  q = _random_tables(rng, n, num_bins, kind)
  # Mostly likely symbols, some arbitrary ones (including the first and last bins).
  likely = np.argmax(q, 1)
  symbols = np.where(rng.random(n) < 0.8, likely, rng.integers(0, num_bins, n))
  symbols[:4] = [0, num_bins - 1, 0, num_bins - 1]
  cum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(q, 1)], 1)
  left, freq = cum[np.arange(n), symbols], q[np.arange(n), symbols]
  coded, small = tables.interval_tables(left, freq, num_bins)
  assert small.shape == (n, 3) and np.all(small >= 0)
  assert {0, 2} <= set(coded.tolist())  # both edge cases occur
  whole = entropy.encode_stream(symbols.astype(np.int32), (q - 1).astype(np.float32))
  assert entropy.encode_stream(coded, small) == whole


def test_pixel_intervals_equal_the_whole_tables(pyramid_model):
  """C'_s and q_s from two edges equal the cumulative frequencies of `pixel_tables`' rows."""
  rng = np.random.default_rng(0)
  cfg = pyramid_model.exact.config
  n, k = 700, cfg.num_mixtures
  head = np.zeros((n, 12 * k), np.float32)  # snapped units: logits 1/16, means 1/64, ...
  head[:, :3 * k] = rng.integers(-200, 200, (n, 3 * k)) / 16
  head[:, 3 * k:6 * k] = rng.integers(-2000, 256 * 64 + 2000, (n, 3 * k)) / 64
  head[:, 6 * k:9 * k] = rng.integers(-140, 240, (n, 3 * k)) / 32
  head[:, 9 * k:] = rng.integers(-300, 300, (n, 3 * k)) / 16
  symbols = rng.integers(0, 256, (n, 3)).astype(np.int32)
  symbols[:3] = [[0, 255, 0], [255, 0, 255], [0, 0, 0]]
  left, freq = exact_tables.pixel_intervals(jnp.asarray(head), jnp.asarray(symbols), 3, cfg)
  rows = tables.to_rows(exact_tables.head_units(jnp.asarray(head), True), 1024)
  for c in range(3):
    x_prev = np.zeros((rows.shape[0], 3), np.float32)
    x_prev[:n, :c] = symbols[:, :c]
    whole = np.concatenate([t for _, t in exact_tables.pixel_tables(
        rows, jnp.asarray(x_prev), n, c, cfg)]).astype(np.int64) + 1
    cum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(whole, 1)], 1)
    np.testing.assert_array_equal(left[:, c], cum[np.arange(n), symbols[:, c]])
    np.testing.assert_array_equal(freq[:, c], whole[np.arange(n), symbols[:, c]])


def _images(rng):
  x = rng.integers(0, 256, (45, 70, 4)).astype(np.uint8)
  yy, xx = np.mgrid[0:45, 0:70]
  smooth = np.stack([yy * 9, xx * 6, (yy + xx) * 4], -1).astype(np.uint8)
  return [(images.from_array(x[..., :3]), {}),
          (images.from_array(smooth), {"tile_size": 32}),
          (images.ImageData(np.ascontiguousarray(x[..., 0]), "L"), {"tile_size": 32}),
          (images.ImageData(np.ascontiguousarray(x), "RGBA"), {"tile_size": 32})]


def test_pipelined_decoder_uses_small_chunks(pyramid_model, monkeypatch):
  """Chunks of 64 rows: many chunks per channel, so the wavefront order really interleaves."""
  monkeypatch.setattr(codec, "DECODE_CHUNK_ROWS", 64)
  rng = np.random.default_rng(3)
  image = images.from_array(rng.integers(0, 256, (21, 35, 3)).astype(np.uint8))
  data, _ = codec.encode(image, pyramid_model, method="model")
  back, _ = codec.decode(data, pyramid_model)
  np.testing.assert_array_equal(back.pixels, image.pixels)


# pyramid: slow (67 s in CI); the shipped pyramid model's golden files check its bytes by default
@pytest.mark.parametrize("which", ["l3c", pytest.param("pyramid", marks=pytest.mark.slow)])
def test_fast_paths_give_the_bytes_of_the_plain_ones(which, l3c_model, pyramid_model,
                                                     monkeypatch):
  """Interval coding and tile threads against whole tables, one tile at a time: same bytes
  (odd sizes, several tiles of different shapes, gray, RGBA with a coded alpha)."""
  model = l3c_model if which == "l3c" else pyramid_model
  for image, kw in _images(np.random.default_rng(1)):
    fast, _ = codec.encode(image, model, method="model", **kw)
    monkeypatch.setattr(codec, "ENCODE_FROM_INTERVALS", False)
    monkeypatch.setattr(codec, "MAX_TILE_THREADS", 1)
    monkeypatch.setattr(codec, "DECODE_PIPELINED", False)
    plain, _ = codec.encode(image, model, method="model", **kw)
    back, _ = codec.decode(fast, model)
    monkeypatch.undo()
    assert fast == plain, (image.mode, kw)
    np.testing.assert_array_equal(back.pixels, image.pixels)
    back, _ = codec.decode(fast, model)  # pipelined channels, tiles in threads
    np.testing.assert_array_equal(back.pixels, image.pixels)


def test_progress_is_reported_and_ends_at_the_total(pyramid_model):
  rng = np.random.default_rng(2)
  image = images.ImageData(rng.integers(0, 256, (45, 70, 4)).astype(np.uint8), "RGBA")
  calls = {"encode": [], "decode": []}
  data, _ = codec.encode(image, pyramid_model, tile_size=32, method="model",
                         progress=lambda d, t: calls["encode"].append((d, t)))
  back, _ = codec.decode(data, pyramid_model,
                         progress=lambda d, t: calls["decode"].append((d, t)))
  np.testing.assert_array_equal(back.pixels, image.pixels)
  total = 2 * 45 * 70  # RGB and the (non-constant) alpha component, every pixel once
  num_tiles = 2 * 2 * 3
  for side, seen in calls.items():
    done = [d for d, _ in seen]
    assert {t for _, t in seen} == {total}, side
    assert done[0] == 0 and done[-1] == total, side
    assert all(a <= b for a, b in zip(done, done[1:])), side
    assert len(seen) > num_tiles, side  # per coding step, not only per tile
  # Without a callable nothing changes.
  assert codec.encode(image, pyramid_model, tile_size=32, method="model")[0] == data
