"""Range coder wrapper (coding.entropy) and integer tables (coding.tables)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax.coding import entropy
from l3c_jax.coding import tables
from l3c_jax.likelihood import dmll
from l3c_jax.likelihood import pmf
from l3c_jax.models.config import L3CConfig

TOTAL = 1 << 24


def _random_freq_table(gen, n, num_bins):
  """[n, A] float32 q - 1 with q >= 1 and sum q = 2^24 per row (peaked, like real models)."""
  logits = gen.normal(scale=3.0, size=(n, num_bins))
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  q = np.floor(p * (TOTAL - num_bins)).astype(np.int64) + 1
  q[np.arange(n), q.argmax(1)] += TOTAL - q.sum(1)
  return (q - 1).astype(np.float32), q


def _sample(gen, q):
  cum = np.cumsum(q, axis=1)
  u = gen.integers(0, TOTAL, size=(q.shape[0], 1))
  return (cum <= u).sum(1).astype(np.int32)


@pytest.mark.parametrize("num_bins", [25, 256])
def test_entropy_roundtrip_in_chunks_is_exact(np_rng, num_bins):
  table, q = _random_freq_table(np_rng, 3000, num_bins)
  symbols = _sample(np_rng, q)
  enc = entropy.StreamEncoder()
  for start in range(0, 3000, 1024):  # chunks of different tables, in order
    enc.encode(symbols[start:start + 1024], table[start:start + 1024])
  data = enc.finish()
  dec = entropy.StreamDecoder(data)
  out = np.concatenate([dec.decode(table[s:s + 1024]) for s in range(0, 3000, 1024)])
  np.testing.assert_array_equal(out, symbols)


def test_entropy_bits_match_integer_model(np_rng):
  table, q = _random_freq_table(np_rng, 20000, 256)
  symbols = _sample(np_rng, q)
  ideal_bits = -np.sum(np.log2(q[np.arange(len(symbols)), symbols] / TOTAL))
  bits = 8 * len(entropy.encode_stream(symbols, table))
  assert bits >= ideal_bits - 1
  assert bits <= ideal_bits * 1.0005 + 64


def test_entropy_garbage_gives_stream_error_or_valid_symbols(np_rng):
  table, _ = _random_freq_table(np_rng, 500, 256)
  raised = 0
  for _ in range(30):
    garbage = np_rng.integers(0, 256, size=4 * int(np_rng.integers(1, 40)), dtype=np.uint8)
    try:
      out = entropy.decode_stream(garbage.tobytes(), table)
    except entropy.StreamError:
      raised += 1
      continue
    assert out.shape == (500,) and out.min() >= 0 and out.max() < 256
  assert raised > 0  # the range decoder does detect most invalid data


def test_entropy_rejects_stream_of_odd_length():
  with pytest.raises(entropy.StreamError, match="multiple of 4"):
    entropy.StreamDecoder(b"\x00" * 7)


def test_entropy_rejects_non_float32_tables():
  with pytest.raises(ValueError, match="float32"):
    entropy.encode_stream(np.zeros(3, np.int32), np.ones((3, 4), np.float64))


def test_tables_uniform_table_is_exact():
  t = tables.uniform_table(7, 25)
  q = t.astype(np.int64) + 1
  assert t.shape == (7, 25) and t.flags.c_contiguous
  assert np.all(q.sum(1) == TOTAL)
  assert q.max() - q.min() == 1  # as even as integers allow


def _mixture(gen, n, k, mean_lo, mean_hi, log_scale_lo, log_scale_hi):
  logits = jnp.asarray(gen.normal(size=(n, k)).astype(np.float32))
  means = jnp.asarray(gen.uniform(mean_lo, mean_hi, (n, k)).astype(np.float32))
  log_scales = jnp.asarray(gen.uniform(log_scale_lo, log_scale_hi, (n, k)).astype(np.float32))
  return logits, means, log_scales


@pytest.mark.parametrize("alphabet", [dmll.RGB_ALPHABET, dmll.latent_alphabet(25)],
                         ids=["rgb", "latent"])
def test_tables_frequencies_are_positive_integers_summing_to_2_24(np_rng, alphabet):
  # Includes extreme cases: tiny scales (log s = -7), means far outside the alphabet.
  lo, hi = alphabet.x_min, alphabet.x_max
  span = hi - lo
  logits, means, log_scales = _mixture(np_rng, 4096, 3, lo - span, hi + span, -7.0, 4.0)
  t = np.asarray(tables.frequency_table(logits, means, log_scales, alphabet))
  assert t.dtype == np.float32 and t.shape == (4096, alphabet.num_bins)
  q = t.astype(np.int64) + 1
  np.testing.assert_array_equal(t, np.floor(t))
  assert q.min() >= 1
  np.testing.assert_array_equal(q.sum(1), TOTAL)


def test_tables_nan_parameters_still_give_a_valid_table():
  nan = jnp.full((2, 2), jnp.nan, jnp.float32)
  t = np.asarray(tables.frequency_table(nan, nan, nan, dmll.RGB_ALPHABET))
  assert np.all(np.isfinite(t)) and t.min() >= 0


def test_tables_match_the_float_pmf(np_rng):
  logits, means, log_scales = _mixture(np_rng, 2000, 5, 0.0, 255.0, -1.0, 3.0)
  q = np.asarray(tables.frequency_table(logits, means, log_scales, dmll.RGB_ALPHABET)) + 1
  p = np.asarray(pmf.mixture_pmf(logits, means, log_scales, dmll.RGB_ALPHABET))
  # Each bin gets p * (2^24 - A) counts up to floor() (< 1 count per edge) plus 1 count;
  # float32 rounding of CDF values near 1 (ulp 6e-8) adds a few ulps on either side.
  np.testing.assert_allclose(q / TOTAL, p, rtol=256 / TOTAL * 1.01, atol=3.0 / TOTAL + 5e-7)


def test_tables_pixel_tables_are_deterministic_and_use_only_previous_channels(np_rng):
  cfg = L3CConfig(num_mixtures=2)
  n = 700  # not a multiple of the chunk size: exercises the padded last chunk
  head = np_rng.normal(size=(1, 1, n, 4 * 3 * 2)).astype(np.float32)
  rows = tables.to_rows(jnp.asarray(head), tables.chunk_rows_for(n))
  x = np_rng.integers(0, 256, (n, 3)).astype(np.float32)

  def collect(channel, x_prev):
    xp = np.zeros((rows.shape[0], 3), np.float32)
    xp[:n] = x_prev
    return np.concatenate([t for _, t in tables.pixel_tables(rows, jnp.asarray(xp), n,
                                                             channel, cfg)])

  masked = x.copy()
  masked[:, 1:] = 0
  g1 = collect(1, masked)
  np.testing.assert_array_equal(g1, collect(1, masked))       # bit-identical on recompute
  assert g1.shape == (n, 256)
  other = masked.copy()
  other[:, 0] = 255 - other[:, 0]
  assert not np.array_equal(g1, collect(1, other))            # G depends on R
  r = collect(0, np.zeros_like(x))
  np.testing.assert_array_equal(r, collect(0, masked))        # R depends on nothing else


def test_tables_chunk_sizes_are_bounded_powers_of_two():
  for n in (1, 64, 255, 256, 257, 10**4, 10**7):
    c = tables.chunk_rows_for(n)
    assert tables.MIN_CHUNK_ROWS <= c <= tables.CHUNK_ROWS and c & (c - 1) == 0
  assert tables.chunk_rows_for(10**7) == tables.CHUNK_ROWS
  cfg = L3CConfig()
  assert tables.latent_chunk_positions(10**7, cfg) * cfg.latent_channels <= tables.CHUNK_ROWS
  assert math.log2(tables.TOTAL_FREQUENCY) == entropy.PRECISION_BITS


def test_tables_exp2_is_accurate_monotone_and_finite():
  x = jnp.linspace(-140.0, 140.0, 400001, dtype=jnp.float32)
  got = np.asarray(tables.exp2(x), np.float64)
  want = np.exp2(np.clip(np.asarray(x, np.float64), -100, 100))
  np.testing.assert_allclose(got, want, rtol=1.5e-7)
  assert np.all(np.diff(got) >= 0) and np.all(np.isfinite(got)) and got.min() > 0
