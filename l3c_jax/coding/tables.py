"""Helpers around the range coder's tables: rows, chunks, prefetch and the uniform prior.

The tables of the model's heads are built by `coding.exact_tables` (integer arithmetic from the
exact mixture parameters, identical on every machine). Tables are built CHUNK_ROWS rows at a time
(one compiled shape per row-count bucket; the last chunk is padded with zero rows) and consumed
by the coder as they come, with a couple of chunks computed ahead while the coder works
(`prefetched`); a [16384, 256] float32 chunk is 16 MB. A table holds, per symbol row, the
integer frequencies q_i - 1 (q_i >= 1, sum_i q_i = 2^24) as float32 for `coding.entropy`.

The encoder, which knows every symbol, does not need whole tables: the range coder only uses
the coded symbol's interval [left, left + q) of the 2^24 total, so a 3-entry table with the same
interval codes to the same bytes (`interval_tables`; tests/test_codec.py checks it on extreme
tables, the golden files check it end to end).
"""

import collections
import functools
from typing import Callable, Iterator, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax.models.config import L3CConfig

PRECISION_BITS = 24
TOTAL_FREQUENCY = 1 << PRECISION_BITS
CHUNK_ROWS = 16384         # max rows (pixels, or latent positions x C_q) per jitted call
MIN_CHUNK_ROWS = 256       # small images use the smallest power of two >= their row count
PREFETCH_CHUNKS = 2        # chunks computed ahead of the coder (async dispatch)


def uniform_table(num_symbols: int, num_bins: int) -> np.ndarray:
  """[n, A] float32 table of the uniform prior: q_i = floor(2^24 / A) + (i < 2^24 mod A)."""
  base, rem = divmod(TOTAL_FREQUENCY, num_bins)
  row = np.full(num_bins, base, np.float32)
  row[:rem] += 1
  return np.ascontiguousarray(np.broadcast_to(row - 1.0, (num_symbols, num_bins)))


def interval_tables(left: np.ndarray, freq: np.ndarray, num_bins: int
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Known symbols' intervals -> (symbols [n] int32, tables [n, 3] float32) that the range coder
  codes to the same bytes as the full tables.

  Symbol s of a full table with cumulative C'_s = left and frequency q codes as the interval
  [left, left + q); so does the middle entry of [left, q, rest] (rest = 2^24 - left - q). An
  entry must be >= 1, so a symbol at the bottom (left = 0) becomes entry 0 of [q, 1, rest - 1],
  one at the top (rest = 0) entry 2 of [1, left - 1, q]. (rest >= A - 1 >= 2 when left = 0 and
  left >= A - 1 >= 2 when rest = 0, because every q_i >= 1.)

  Args:
    left, freq: [n] int integers C'_s and q_s of the coded symbols (`exact_tables.*_intervals`).
    num_bins: A of the full tables (>= 3).
  """
  if num_bins < 3:
    raise ValueError("interval tables need an alphabet of at least 3 symbols")
  left = np.asarray(left, np.int64).reshape(-1)
  freq = np.asarray(freq, np.int64).reshape(-1)
  rest = TOTAL_FREQUENCY - left - freq
  table = np.stack([left, freq, rest], axis=1)
  symbols = np.ones(left.shape, np.int32)
  bottom = left == 0
  table[bottom] = np.stack([freq, np.ones_like(freq), rest - 1], axis=1)[bottom]
  symbols[bottom] = 0
  top = rest == 0
  table[top] = np.stack([np.ones_like(freq), left - 1, freq], axis=1)[top]
  symbols[top] = 2
  return symbols, (table - 1).astype(np.float32)


def chunk_rows_for(num_rows: int) -> int:
  """Pixel rows per jitted call for num_rows pixels (a power of two in [256, CHUNK_ROWS])."""
  return int(min(CHUNK_ROWS, max(MIN_CHUNK_ROWS, 1 << max(0, num_rows - 1).bit_length())))


def latent_chunk_positions(num_positions: int, config: L3CConfig) -> int:
  """Latent positions per jitted call (each gives C_q table rows)."""
  return min(chunk_rows_for(num_positions), CHUNK_ROWS // config.latent_channels)


@functools.partial(jax.jit, static_argnames=("chunk",))
def to_rows(x: jax.Array, chunk: int) -> jax.Array:
  """[1, h, w, D] -> [n_pad, D] rows in raster order, zero-padded to a multiple of chunk."""
  rows = x.reshape(-1, x.shape[-1])
  return jnp.pad(rows, ((0, -rows.shape[0] % chunk), (0, 0)))


def prefetched(compute: Callable[[int], jax.Array], num_chunks: int) -> Iterator[jax.Array]:
  """Yields compute(0..num_chunks-1) while the next PREFETCH_CHUNKS are already dispatched."""
  pending = collections.deque()
  for i in range(num_chunks):
    while len(pending) <= PREFETCH_CHUNKS and i + len(pending) < num_chunks:
      pending.append(compute(i + len(pending)))
    yield pending.popleft()


