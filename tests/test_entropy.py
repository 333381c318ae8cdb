"""Range coder wrapper (coding.entropy), table helpers (coding.tables) and the pixel tables' use
of earlier channels (coding.exact_tables)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax.coding import entropy
from l3c_jax.coding import exact_tables
from l3c_jax.coding import tables
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


def test_tables_pixel_tables_are_deterministic_and_use_only_previous_channels(np_rng):
  cfg = L3CConfig(num_mixtures=2)
  n = 700  # not a multiple of the chunk size: exercises the padded last chunk
  # Integer head parameters (logit16, base64, ls32, coeff16), as the exact heads give them.
  head = np.concatenate([np_rng.integers(-40, 40, (1, 1, n, 6)),
                         np_rng.integers(0, 255 * 64, (1, 1, n, 6)),
                         np_rng.integers(-64, 128, (1, 1, n, 6)),
                         np_rng.integers(-256, 257, (1, 1, n, 6))], -1).astype(np.float32)
  rows = tables.to_rows(jnp.asarray(head), tables.chunk_rows_for(n))
  x = np_rng.integers(0, 256, (n, 3)).astype(np.float32)

  def collect(channel, x_prev):
    xp = np.zeros((rows.shape[0], 3), np.float32)
    xp[:n] = x_prev
    return np.concatenate([t for _, t in exact_tables.pixel_tables(rows, jnp.asarray(xp), n,
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
