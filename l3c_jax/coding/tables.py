"""Integer frequency tables for the range coder, built from the model's mixture parameters.

This is the one place where float probabilities become integers. For one coded symbol with
mixture parameters (pi_k, mu_k, s_k), k < K, over an alphabet of A levels with bin width b:

  1. F_j = sum_k pi_k * sigma((t_j - mu_k) / s_k), in float32, at the A + 1 bin edges
     t_0 = -inf, t_j = x_min + (j - 1/2) b (0 < j < A), t_A = +inf, so the edge bins take the
     tails exactly as in the training likelihood
     (docs/l3c_reference.md#mixture-likelihood-and-coupling). sigma(u) is evaluated as
     1 / (1 + 2^(-u log2 e)) with our own 2^x (`exp2`: a degree-6 polynomial on [-1/2, 1/2]
     and an exponent bit shift; relative error < 1e-7, monotone), which made the tables 1.7x
     faster than with XLA's exp on this CPU (docs/measurements.md#integer-tables).
  2. C_j = floor(clip(F_j, 0, 1) * (2^24 - A)) + j, then C_0 := 0 and C_A := 2^24. Adding j
     gives every bin at least one count (the official code's "+j" trick, at 24 instead of 16
     bits); forcing C_A absorbs float rounding of sum_k pi_k into the top bin.
  3. q_i = max(C_{i+1} - C_i, 1), and the table holds c_i = q_i - 1 as float32 (exact integers
     below 2^24) for `coding.entropy`, which then codes with exactly q_i / 2^24.
Since F is non-decreasing in j, q_i >= 1 and sum_i q_i = 2^24 exactly. The max(., 1) only acts
if float rounding ever broke monotonicity (or the model produced NaNs); such a row is still a
valid table (sum slightly above 2^24, rescaled by constriction's deterministic rule), so the
codec stays lossless. NaNs in F are mapped to 0 for the same reason.

Determinism: the encoder and the decoder call these jitted functions with bit-identical inputs
(head parameters from the same jitted per-scale decoder on the same hard symbols, and the same
already-coded pixel values), in chunks of the same fixed size at the same offsets, so they get
bit-identical tables. The tables are never derived from the training forward pass.

Memory and speed: tables are built CHUNK_ROWS rows at a time (one compiled shape per row
count bucket; the last chunk is padded with zero rows) and consumed by the coder as they come,
with a couple of chunks computed ahead while the coder works; a [16384, 256] float32 chunk is
16 MB. Per edge and component the cost is a few FMAs (exp2) and one division; the mixture is
summed in an unrolled loop over K so XLA fuses the whole CDF into one elementwise loop (the
dense [N, A, K] PMF of `likelihood.pmf` with an einsum over K is 5-7x slower on this CPU, see
experiments/bench_codec.py --tables_ablation and docs/measurements.md#integer-tables). Per-row
parameters, the integer CDF and the differences are three jitted calls (see `frequency_table` for
why).
"""

import collections
import functools
from typing import Callable, Iterator, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax.likelihood import dmll
from l3c_jax.models.config import L3CConfig

PRECISION_BITS = 24
TOTAL_FREQUENCY = 1 << PRECISION_BITS
CHUNK_ROWS = 16384         # max rows (pixels, or latent positions x C_q) per jitted call
MIN_CHUNK_ROWS = 256       # small images use the smallest power of two >= their row count
PREFETCH_CHUNKS = 2        # chunks computed ahead of the coder (async dispatch)


def _edges(alphabet: dmll.Alphabet) -> np.ndarray:
  """[A + 1] float32 bin edges: -inf, the A - 1 interior edges, +inf."""
  b = np.float32(alphabet.bin_width)
  inner = np.float32(alphabet.x_min) + b * (np.arange(1, alphabet.num_bins, dtype=np.float32)
                                            - np.float32(0.5))
  return np.concatenate([[-np.inf], inner, [np.inf]]).astype(np.float32)


@jax.jit
def mixture_weights(logits: jax.Array, log_scales: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """(pi, 1/s) = (softmax(logits), exp(-log_scales)), each [N, K]."""
  return jax.nn.softmax(logits, axis=-1), jnp.exp(-log_scales)


# 2^f on [-1/2, 1/2]: Chebyshev fit of degree 6, coefficients of f^0..f^6 (float32 values).
_EXP2_COEFFS = (1.0, 0.6931471824645996, 0.24022650718688965, 0.05550340563058853,
                0.009618040174245834, 0.0013395280111581087, 0.00015465312753804028)
_LOG2E = float(np.log2(np.e))


def exp2(x: jax.Array) -> jax.Array:
  """2^x in float32 for any x, clamped to [-100, 100]: never inf, 0 or denormal (denormals
  are slow on x86), and sigma(-u) at the clamp, 2^-100, is far below one count of 2^-24.

  2^x = 2^n * p(x - n) with n = round(x), p a polynomial: relative error < 1e-7 (about one
  float32 ulp), monotone in x on a dense test grid.
  """
  x = jnp.clip(x, -100.0, 100.0)
  n = jnp.round(x)
  f = x - n
  p = jnp.float32(_EXP2_COEFFS[-1])
  for a in _EXP2_COEFFS[-2::-1]:
    p = p * f + jnp.float32(a)
  two_n = jax.lax.bitcast_convert_type(
      jax.lax.shift_left(n.astype(jnp.int32) + 127, jnp.int32(23)), jnp.float32)
  return p * two_n


@functools.partial(jax.jit, static_argnames=("alphabet",))
def integer_cdf(pi: jax.Array, inv_s: jax.Array, means: jax.Array,
                alphabet: dmll.Alphabet) -> jax.Array:
  """Steps 1-2 of the module doc: [N, K] mixture parameters -> [N, A + 1] integer CDF C_j.

  The result holds exact integers in float32: C_0 = 0 <= C_1 <= ... <= C_A = 2^24.
  """
  num_bins = alphabet.num_bins
  edges = jnp.asarray(_edges(alphabet))[None, :]                   # [1, A + 1]
  inv_s_log2 = inv_s * np.float32(_LOG2E)                          # [N, K]
  cdf = jnp.zeros((), jnp.float32)
  for k in range(pi.shape[-1]):  # unrolled: one fused elementwise loop over [N, A + 1]
    minus_u_log2 = inv_s_log2[:, k:k + 1] * (means[:, k:k + 1] - edges)
    cdf = cdf + pi[:, k:k + 1] / (1.0 + exp2(minus_u_log2))
  cdf = jnp.clip(jnp.nan_to_num(cdf, nan=0.0), 0.0, 1.0)
  j = jnp.arange(num_bins + 1, dtype=jnp.float32)
  c = jnp.floor(cdf * np.float32(TOTAL_FREQUENCY - num_bins)) + j
  return jnp.where(j == 0, 0.0, jnp.where(j == num_bins, np.float32(TOTAL_FREQUENCY), c))


@jax.jit
def frequencies(int_cdf: jax.Array) -> jax.Array:
  """Step 3 of the module doc: [N, A + 1] integer CDF -> [N, A] float32 q_i - 1."""
  return jnp.maximum(int_cdf[:, 1:] - int_cdf[:, :-1], 1.0) - 1.0


def frequency_table(logits: jax.Array, means: jax.Array, log_scales: jax.Array,
                    alphabet: dmll.Alphabet) -> jax.Array:
  """Integer frequencies (minus one) of discretized logistic mixtures; see the module doc.

  The three stages are separate jitted calls on purpose: within one XLA fusion the per-row
  parameters (softmax, exp) and the integer CDF would be recomputed for every table entry
  (XLA drops optimization barriers before fusion on CPU), which made tables 3x slower
  (docs/measurements.md#integer-tables).

  Args:
    logits, means, log_scales: [N, K] mixture parameters (log-scales already clamped).
    alphabet: the A coded levels.
  Returns:
    [N, A] float32 holding q_i - 1, q_i >= 1, sum_i q_i = 2^24 per row.
  """
  pi, inv_s = mixture_weights(logits, log_scales)
  return frequencies(integer_cdf(pi, inv_s, means, alphabet))


def uniform_table(num_symbols: int, num_bins: int) -> np.ndarray:
  """[n, A] float32 table of the uniform prior: q_i = floor(2^24 / A) + (i < 2^24 mod A)."""
  base, rem = divmod(TOTAL_FREQUENCY, num_bins)
  row = np.full(num_bins, base, np.float32)
  row[:rem] += 1
  return np.ascontiguousarray(np.broadcast_to(row - 1.0, (num_symbols, num_bins)))


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


@functools.partial(jax.jit, static_argnames=("channel", "num_mixtures", "log_scale_min",
                                             "chunk"))
def _pixel_params(head_rows, x_prev_rows, start, *, channel, num_mixtures, log_scale_min, chunk):
  """(pi, 1/s, mu), each [chunk, K], of pixel channel `channel` for rows start..start+chunk-1."""
  head = jax.lax.dynamic_slice_in_dim(head_rows, start, chunk, axis=0)
  x_prev = jax.lax.dynamic_slice_in_dim(x_prev_rows, start, chunk, axis=0)
  logits, means, log_scales = dmll.channel_mixture(
      head, channel, 3, num_mixtures, True, x_prev, log_scale_min)
  return jax.nn.softmax(logits, axis=-1), jnp.exp(-log_scales), means


@functools.partial(jax.jit, static_argnames=("num_channels", "num_mixtures", "log_scale_min",
                                             "chunk"))
def _latent_params(head_rows, start, *, num_channels, num_mixtures, log_scale_min, chunk):
  """(pi, 1/s, mu), each [chunk * C_q, K] in (position, channel) order."""
  head = jax.lax.dynamic_slice_in_dim(head_rows, start, chunk, axis=0)
  mp = dmll.split_params(head, num_channels, num_mixtures, False, log_scale_min)
  flat = lambda a: a.reshape(chunk * num_channels, num_mixtures)
  return (jax.nn.softmax(flat(mp.logits), axis=-1), jnp.exp(-flat(mp.log_scales)),
          flat(mp.means))


def _table(params, alphabet: dmll.Alphabet) -> jax.Array:
  return frequencies(integer_cdf(*params, alphabet))


def _prefetched(compute: Callable[[int], jax.Array], num_chunks: int) -> Iterator[jax.Array]:
  """Yields compute(0..num_chunks-1) while the next PREFETCH_CHUNKS are already dispatched."""
  pending = collections.deque()
  for i in range(num_chunks):
    while len(pending) <= PREFETCH_CHUNKS and i + len(pending) < num_chunks:
      pending.append(compute(i + len(pending)))
    yield pending.popleft()


def pixel_tables(head_rows: jax.Array, x_prev_rows: jax.Array, num_rows: int, channel: int,
                 config) -> Iterator[Tuple[int, np.ndarray]]:
  """Tables of one pixel channel, chunk by chunk.

  Args:
    head_rows: [n_pad, 12 K] head-1 parameters per pixel (raster order; from `to_rows`).
    x_prev_rows: [n_pad, 3] float32 pixel values; channels < `channel` hold the coded values,
      the others must be 0 (the encoder and the decoder pass identical arrays).
    num_rows: number of valid rows n (pixels).
    channel: 0 (R), 1 (G) or 2 (B).
  Yields:
    (start, table) with table [m, 256] float32 for rows start..start+m-1.
  """
  chunk = chunk_rows_for(num_rows)
  num_chunks = -(-num_rows // chunk)
  compute = lambda i: _table(_pixel_params(
      head_rows, x_prev_rows, np.int32(i * chunk), channel=channel,
      num_mixtures=config.num_mixtures, log_scale_min=config.log_scale_min, chunk=chunk),
      dmll.RGB_ALPHABET)
  for i, table in enumerate(_prefetched(compute, num_chunks)):
    start = i * chunk
    yield start, np.asarray(table)[:min(chunk, num_rows - start)]


def latent_tables(head_rows: jax.Array, num_positions: int, config: L3CConfig
                  ) -> Iterator[Tuple[int, np.ndarray]]:
  """Tables of one latent scale z^(s-1) from head s, chunk by chunk.

  Args:
    head_rows: [n_pad, 3 C_q K] head parameters per position (raster order; from `to_rows`).
    num_positions: number of valid positions n; symbols are ordered (position, channel).
  Yields:
    (start, table): table [m * C_q, L] float32 for positions start..start+m-1.
  """
  c = config.latent_channels
  chunk = latent_chunk_positions(num_positions, config)
  num_chunks = -(-num_positions // chunk)
  alphabet = dmll.latent_alphabet(config.num_levels, config.levels_min, config.levels_max)
  compute = lambda i: _table(_latent_params(
      head_rows, np.int32(i * chunk), num_channels=c, num_mixtures=config.num_mixtures,
      log_scale_min=config.log_scale_min, chunk=chunk), alphabet)
  for i, table in enumerate(_prefetched(compute, num_chunks)):
    start = i * chunk
    yield start, np.asarray(table)[:min(chunk, num_positions - start) * c]

