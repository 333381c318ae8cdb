"""The codec's fast paths give the bytes of the plain ones, and the progress hook.

- The encoder codes HEAD steps from each symbol's interval with 3-entry tables
  (`tables.interval_tables`, `exact_tables.*_intervals`) instead of whole tables: same bytes.
- Pixel steps are window-coded (format version 4, `exact_tables` "Window coding"): the window
  tables hold exactly the whole tables' intervals, escapes are coded again with their bins'
  rescaled frequencies, NumPy whole rows equal the device's, and files with many escapes decode
  exactly at the whole tables' size. The decoder reads pixel channels pipelined by blocks
  (`codec.BLOCK_ROWS`); tiles are coded in threads (`codec.MAX_TILE_THREADS`): same bytes and
  pixels as one tile at a time.
- `codec.encode(..., progress=)` / `codec.decode(..., progress=)` report cumulative work units
  and end at the total.
Small shapes (13x19, 21x35, 7x9) as in tests/test_codec.py, so little is compiled.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import model_io
from l3c_jax.coding import bitstream
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


def _random_head(rng, n: int, k: int) -> np.ndarray:
  """[n, 12 K] snapped pixel head params (logits 1/16, means 1/64, log scales 1/32, coupling
  1/16), from point-like to broad mixtures, means also beyond the pixel range."""
  head = np.zeros((n, 12 * k), np.float32)
  head[:, :3 * k] = rng.integers(-200, 200, (n, 3 * k)) / 16
  head[:, 3 * k:6 * k] = rng.integers(-2000, 256 * 64 + 2000, (n, 3 * k)) / 64
  head[:, 6 * k:9 * k] = rng.integers(-140, 240, (n, 3 * k)) / 32
  head[:, 9 * k:] = rng.integers(-300, 300, (n, 3 * k)) / 16
  return head


def _whole_tables(head, symbols, cfg):
  """Per channel c: [n, 256] int64 q of `pixel_tables` (x_prev: the symbols' channels < c)."""
  n = head.shape[0]
  rows = tables.to_rows(exact_tables.head_units(jnp.asarray(head), True), 1024)
  out = []
  for c in range(3):
    x_prev = np.zeros((rows.shape[0], 3), np.float32)
    x_prev[:n, :c] = symbols[:, :c]
    out.append(np.concatenate([t for _, t in exact_tables.pixel_tables(
        rows, jnp.asarray(x_prev), n, c, cfg)]).astype(np.int64) + 1)
  return rows, out


def test_pixel_intervals_equal_the_whole_tables(pyramid_model):
  """C'_s and q_s from two edges equal the cumulative frequencies of `pixel_tables`' rows."""
  rng = np.random.default_rng(0)
  cfg = pyramid_model.exact.config
  n = 700
  head = _random_head(rng, n, cfg.num_mixtures)
  symbols = rng.integers(0, 256, (n, 3)).astype(np.int32)
  symbols[:3] = [[0, 255, 0], [255, 0, 255], [0, 0, 0]]
  left, freq = exact_tables.pixel_intervals(jnp.asarray(head), jnp.asarray(symbols), 3, cfg)
  _, whole = _whole_tables(head, symbols, cfg)
  for c in range(3):
    cum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(whole[c], 1)], 1)
    np.testing.assert_array_equal(left[:, c], cum[np.arange(n), symbols[:, c]])
    np.testing.assert_array_equal(freq[:, c], whole[c][np.arange(n), symbols[:, c]])


def test_window_tables_are_the_whole_tables_with_merged_ends(pyramid_model):
  """Window entries are the whole table's q of bins t + 1 .. t + W, and the two ends hold the
  sums below and above; NumPy `full_rows` equals the device's whole tables; the encoder's
  window intervals are those entries' intervals; escapes are told apart from one-bin ends."""
  rng = np.random.default_rng(5)
  cfg = pyramid_model.exact.config
  n, width = 900, exact_tables.WINDOW_BINS
  head = _random_head(rng, n, cfg.num_mixtures)
  symbols = rng.integers(0, 256, (n, 3)).astype(np.int32)
  symbols[:4] = [[0, 255, 0], [255, 0, 255], [0, 0, 0], [255, 255, 255]]
  rows, whole = _whole_tables(head, symbols, cfg)
  left, freq, offsets, params = exact_tables.pixel_window_intervals(
      jnp.asarray(head), jnp.asarray(symbols), 3, cfg)
  edge_cases = set()
  for c in range(3):
    x_prev = np.zeros((1024, 3), np.float32)
    x_prev[:n, :c] = symbols[:, :c]
    table, t, row = exact_tables.pixel_window_chunk(rows, x_prev, 0, c, cfg)
    table = np.asarray(table)[:n].astype(np.int64) + 1
    t = np.asarray(t)[:n]
    np.testing.assert_array_equal(t, offsets[:, c])
    assert table.shape == (n, width + 2) and np.all((t >= 0) & (t <= 254 - width))
    cum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(whole[c], 1)], 1)
    r = np.arange(n)
    np.testing.assert_array_equal(table[:, 0], cum[r, t + 1])
    np.testing.assert_array_equal(table[:, 1:-1], whole[c][r[:, None], t[:, None] + 1
                                                           + np.arange(width)])
    np.testing.assert_array_equal(table[:, -1], tables.TOTAL_FREQUENCY - cum[r, t + width + 1])
    # Whole rows of some rows, from the decoder's and the encoder's per-row params alike, on
    # the device (many rows) and on the host (few).
    np.testing.assert_array_equal(exact_tables.full_rows(row, r), whole[c])
    np.testing.assert_array_equal(exact_tables.full_rows(params[c], r[::-7]), whole[c][::-7])
    few = r[c::exact_tables.HOST_FULL_ROWS_MAX]
    np.testing.assert_array_equal(exact_tables.full_rows(row, few), whole[c][few])
    np.testing.assert_array_equal(exact_tables._full_rows_host(
        tuple(np.asarray(a)[:n] for a in row)), whole[c])
    # The encoder's interval is the symbol's window entry's.
    s = symbols[:, c]
    entry = np.clip(s - t, 0, width + 1)
    table_cum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(table, 1)], 1)
    np.testing.assert_array_equal(left[:, c], table_cum[r, entry])
    np.testing.assert_array_equal(freq[:, c], table[r, entry])
    decoded, escaped = exact_tables.window_symbols(entry, t)
    inside = (s > t) & (s <= t + width)
    np.testing.assert_array_equal(decoded[inside], s[inside])
    one_bin_end = ((s == 0) & (t == 0)) | ((s == 255) & (t == 254 - width))
    np.testing.assert_array_equal(escaped, ~inside & ~one_bin_end)
    np.testing.assert_array_equal(decoded[one_bin_end], s[one_bin_end])
    edge_cases |= {"escape"} if escaped.any() else set()
    edge_cases |= {"inside"} if inside.any() else set()
    edge_cases |= {"one-bin end"} if one_bin_end.any() else set()
  assert edge_cases == {"escape", "inside", "one-bin end"}


def test_escape_frequencies_rescale_the_escape_bins_exactly():
  """Rows sum to 2^24, every entry >= 1, outside the escape exactly 1, inside within one unit
  of the float64 rescaling q_i (2^24 - 256) / Q (plus the remainder on the first largest), and
  an escaped symbol costs at most log2(2^24 / (2^24 - 256)) bits more than with its whole table, also in escapes
  of tiny total mass and for symbols with q = 1."""
  rng = np.random.default_rng(7)
  width = exact_tables.WINDOW_BINS
  q = np.concatenate([_random_tables(rng, 300, 256, kind) for kind in ("peaked", "flat")]
                     + [np.ones((100, 256), np.int64)])
  q[-100:, 100] += tables.TOTAL_FREQUENCY - 256     # all mass in the window: escapes at q = 1
  n = q.shape[0]
  t = rng.integers(1, 254 - width, n)
  t[-100:] = 60
  high = rng.random(n) < 0.5
  r = exact_tables.escape_frequencies(q, t, high)
  i = np.arange(256)[None, :]
  inside = np.where(high[:, None], i > t[:, None] + width, i <= t[:, None])
  assert r.dtype == np.int64 and np.all(r >= 1)
  np.testing.assert_array_equal(r.sum(1), tables.TOTAL_FREQUENCY)
  np.testing.assert_array_equal(r[~inside], 1)
  mass = np.where(inside, q, 0).sum(1, keepdims=True)
  want = 1 + np.where(inside, q, 0) * (tables.TOTAL_FREQUENCY - 256.0) / mass
  diff = np.where(inside, r - want, 0)
  assert np.all(diff > -1)
  assert np.all(np.sort(diff, axis=1)[:, -2] < 1e-9)  # only the remainder's bin is above
  # Bits: escape interval Q / 2^24, then r_s / 2^24, against q_s / 2^24 of the whole table.
  extra_bits = np.log2(q * float(tables.TOTAL_FREQUENCY) / (mass * r))
  bound = np.log2(tables.TOTAL_FREQUENCY / (tables.TOTAL_FREQUENCY - 256.0))  # 2.2e-5
  assert np.max(np.where(inside, extra_bits, -np.inf)) <= bound + 1e-12


def _images(rng):
  x = rng.integers(0, 256, (45, 70, 4)).astype(np.uint8)
  yy, xx = np.mgrid[0:45, 0:70]
  smooth = np.stack([yy * 9, xx * 6, (yy + xx) * 4], -1).astype(np.uint8)
  return [(images.from_array(x[..., :3]), {}),
          (images.from_array(smooth), {"tile_size": 32}),
          (images.ImageData(np.ascontiguousarray(x[..., 0]), "L"), {"tile_size": 32}),
          (images.ImageData(np.ascontiguousarray(x), "RGBA"), {"tile_size": 32})]


@pytest.mark.slow
def test_window_coding_with_many_escapes_in_small_blocks(pyramid_model, monkeypatch):
  """Blocks of 64 rows on both sides: many blocks per channel, so the wavefront order really
  interleaves and escapes sit in many blocks; a noise image under a model with broad heads
  escapes often. Exact round trip, both sides count the same escapes, and the file costs what
  the model says (escapes coded twice lose only the rescaling's rounding)."""
  monkeypatch.setattr(codec, "BLOCK_ROWS", 64)
  rng = np.random.default_rng(3)
  image = images.from_array(rng.integers(0, 256, (45, 70, 3)).astype(np.uint8))
  data, enc = codec.encode(image, pyramid_model, method="model", estimate=True)
  back, dec = codec.decode(data, pyramid_model)
  np.testing.assert_array_equal(back.pixels, image.pixels)
  assert enc.counts["escapes"] == dec.counts["escapes"] > 200
  # What the model says, within the range coder's flush (<= 64 bits) per substream.
  num_streams = len(bitstream.unpack(data)[1])
  excess_bits = sum(enc.actual_bits.values()) - sum(enc.theory_bits.values())
  assert abs(excess_bits) < 64 * num_streams + 1e-3 * sum(enc.theory_bits.values())


# Slow (l3c ~85 s, pyramid ~67 s in CI); by default the shipped model's golden files check the
# bytes of the fast paths.
@pytest.mark.parametrize("which", ["l3c", "pyramid"])
@pytest.mark.slow
def test_fast_paths_give_the_bytes_of_the_plain_ones(which, l3c_model, pyramid_model,
                                                     monkeypatch):
  """Interval coding and tile threads against whole tables, one tile at a time: same bytes
  (odd sizes, several tiles of different shapes, gray, RGBA with a coded alpha)."""
  model = l3c_model if which == "l3c" else pyramid_model
  for image, kw in _images(np.random.default_rng(1)):
    fast, _ = codec.encode(image, model, method="model", **kw)
    monkeypatch.setattr(codec, "ENCODE_FROM_INTERVALS", False)
    monkeypatch.setattr(codec, "MAX_TILE_THREADS", 1)
    plain, _ = codec.encode(image, model, method="model", **kw)
    back, _ = codec.decode(fast, model)
    monkeypatch.undo()
    assert fast == plain, (image.mode, kw)
    np.testing.assert_array_equal(back.pixels, image.pixels)
    back, _ = codec.decode(fast, model)  # pipelined channels, tiles in threads
    np.testing.assert_array_equal(back.pixels, image.pixels)


@pytest.mark.slow
def test_progress_is_reported_and_ends_at_the_total(pyramid_model):
  # 32x64 in 32x32 tiles: several tiles of one shape (45x70 made four tile shapes to compile,
  # ~55 s on the loaded 2-core machine; odd tile shapes are test_fast_paths_*'s and
  # test_codec.py's point, not this one's).
  rng = np.random.default_rng(2)
  image = images.ImageData(rng.integers(0, 256, (32, 64, 4)).astype(np.uint8), "RGBA")
  calls = {"encode": [], "decode": []}
  data, _ = codec.encode(image, pyramid_model, tile_size=32, method="model",
                         progress=lambda d, t: calls["encode"].append((d, t)))
  back, _ = codec.decode(data, pyramid_model,
                         progress=lambda d, t: calls["decode"].append((d, t)))
  np.testing.assert_array_equal(back.pixels, image.pixels)
  total = 2 * 32 * 64  # RGB and the (non-constant) alpha component, every pixel once
  num_tiles = 2 * 1 * 2
  for side, seen in calls.items():
    done = [d for d, _ in seen]
    assert {t for _, t in seen} == {total}, side
    assert done[0] == 0 and done[-1] == total, side
    assert all(a <= b for a, b in zip(done, done[1:])), side
    # per coding step, not only per tile (per-tile reports would be num_tiles + 1 calls)
    assert len(seen) > num_tiles + 1, (side, len(seen))
  # Without a callable nothing changes.
  assert codec.encode(image, pyramid_model, tile_size=32, method="model")[0] == data


@pytest.mark.slow
def test_compiled_shapes_are_bounded_so_many_image_sizes_do_not_exhaust_memory_maps(
    pyramid_model, monkeypatch):
  """Each new tile shape's executables stay mapped until JAX's caches are cleared; past
  MAX_COMPILED_SHAPES shapes the codec clears them (a process coding ~40 photo sizes used to
  die in LLVM at the kernel's memory-map limit). Round trips stay exact across a clear."""
  clears = []
  real_clear = jax.clear_caches
  monkeypatch.setattr(jax, "clear_caches", lambda: (clears.append(1), real_clear()))
  monkeypatch.setattr(codec, "MAX_COMPILED_SHAPES", 4)
  monkeypatch.setattr(codec, "_compiled_shapes", set())
  rng = np.random.default_rng(5)
  # One padded shape three times (15 x 23 pads to 16 x 24), then a second: no clear yet.
  for h, w in [(16, 24), (16, 24), (15, 23), (24, 16)]:
    x = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    data, _ = codec.encode(images.from_array(x), pyramid_model, method="model")
    np.testing.assert_array_equal(codec.decode(data, pyramid_model)[0].pixels, x)
  assert not clears and len(codec._compiled_shapes) == 4  # (encode, decode) x 2 shapes
  x = rng.integers(0, 256, (32, 16, 3)).astype(np.uint8)  # a third shape: over the bound
  data, _ = codec.encode(images.from_array(x), pyramid_model, method="model")
  assert len(clears) == 1 and len(codec._compiled_shapes) == 1
  np.testing.assert_array_equal(codec.decode(data, pyramid_model)[0].pixels, x)
  assert len(clears) == 1 and len(codec._compiled_shapes) == 2
  # A gray image of that size codes one channel: other compiled steps, another shape.
  gray = rng.integers(0, 256, (32, 16)).astype(np.uint8)
  codec.encode(images.from_array(gray), pyramid_model, method="model")
  assert len(clears) == 1 and len(codec._compiled_shapes) == 3
