"""Exact ("portable") arithmetic for everything the decoder recomputes: numerics version 1.

A file decodes only if the decoder rebuilds, bit for bit, the integer frequency tables the
encoder used. Float networks do not give that across CPUs, XLA flags or jax versions (kernels
sum in different orders, contract into FMAs, use different exp / softmax code). So in a model
with `exact=True`, every tensor the decoder recomputes is a float32 holding a dyadic fixed-point
value that is EXACT: an integer multiple of a power of two, small enough that every sum of
products formed on the way is representable. Then summation order, FMA contraction, vector
width, thread count, kernel choice and fast-math reassociation cannot change any result,
because no operation ever rounds. The network runs on the ordinary fast float32 kernels.

Bounds (checked where they are relied on, see `weight_frac_bits` and `exact_conv`):
  * Conv inputs: clipped to [-R, R] with R = 2^r (static per layer role) and rounded to the grid
    2^-F with F = ACT_BITS - r, so |a| 2^F <= 2^ACT_BITS = 2^10.
  * Conv weights: rounded to the grid 2^-f_w, f_w per layer the largest integer with
    2^ACT_BITS * max_c sum_i |w_ic| 2^f_w <= 2^23 (the L1 norm of each output channel's
    weights, in grid units). Then every partial sum of a_i w_ic, in ANY order and any
    grouping, is an integer multiple of 2^-(F + f_w) below 2^23 of those units: exact in float32
    (24-bit significand). FMA of such values is exact too.
  * Biases: on the same grid 2^-(F + f_w), clipped to 2^23 units, so conv + bias < 2^24 units.
  * Conv outputs: rounded to the feature grid 2^-FEATURE_BITS and clipped to
    [-FEATURE_RANGE, FEATURE_RANGE], i.e. below 2^20 units. Residual sums of up to 8 such
    tensors stay below 2^23 units: exact.
  * Power-of-two scalings (x 2^k) are exact (no overflow or denormals at these magnitudes);
    rounding (`jnp.round`, half to even) and clipping of exact values are exact.
  * Mixture parameters: snapped to integer grids (`snap_mixture`, in "bin units" of the coded
    alphabet): logits 1/16, means 1/64 bin, log-scales 1/32 (clamped to [-4, 7]), coupling
    coefficients lambda = COEFF_TABLE[raw logit on 1/16] / 4096, a lookup, never a platform
    sigmoid. `coding.exact_tables` turns these integers into frequency tables in int32.
Where a backend could compute a float32 convolution with fractional transforms (Winograd /
FFT: cuDNN may pick them), `exact_conv` uses a matmul over patches instead; on the CPU, XLA's
convolution is a GEMM over patches (exact), which tests/test_portable.py checks under
different XLA flags.

Training goes through the same forward pass with straight-through gradients (`ste_round`):
the quantized network is the model (quantization-aware fine-tuning, `--model.exact=true`).
"""

import decimal
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax.likelihood import dmll

NUMERICS_VERSION = 1

ACT_BITS = 10            # conv inputs: |a| 2^F <= 2^10
ACC_LIMIT_LOG2 = 23      # every conv's sum of |a w| stays below 2^23 grid units
FEATURE_BITS = 10        # conv outputs on the grid 2^-10 ...
FEATURE_RANGE = 1024.0   # ... clipped to [-1024, 1024]: below 2^20 units
MIN_WEIGHT_FRAC_BITS = -7   # f_w is searched in [-7, 24]
MAX_WEIGHT_LOG2 = 10        # |w| <= 2^10: with fan-in <= 2^10 the bound holds even at f_w = -7
MAX_WEIGHT_FRAC_BITS = 24

# Mixture parameter grids (bin units of the alphabet), shared with coding.exact_tables.
LOGIT_FRAC_BITS = 4      # logits on 1/16
MEAN_FRAC_BITS = 6       # means on 1/64 bin, measured from the alphabet's first level
LOG_SCALE_FRAC_BITS = 5  # log(s / bin width) on 1/32
LOG_SCALE_MIN = -4.0     # s >= e^-4 bins = 0.018: a point mass at this resolution
LOG_SCALE_MAX = 7.0      # s <= e^7 bins: flat over any alphabet up to 256 levels
COEFF_FRAC_BITS = 4      # raw coupling logits on 1/16 ...
COEFF_RAW_MAX = 16.0     # ... clamped to [-16, 16]
COEFF_Q_BITS = 12        # lambda = COEFF_TABLE[.] / 2^12
MEAN64_MIN, MEAN64_MAX = -(1 << 15), (1 << 15) - 1


def _coeff_table() -> np.ndarray:
  """[513] int32: round(2^12 sigmoid(i / 16)), i = -256..256, from `decimal` (correctly
  rounded, the same on every platform; never the platform's exp)."""
  ctx = decimal.Context(prec=40)
  one = decimal.Decimal(1)
  out = []
  for i in range(-256, 257):
    sig = one / (one + ctx.exp(decimal.Decimal(-i) / 16))
    out.append(int((sig * (1 << COEFF_Q_BITS)).to_integral_value(decimal.ROUND_HALF_EVEN)))
  return np.asarray(out, np.int32)


COEFF_TABLE = _coeff_table()


def is_power_of_two(v: float) -> bool:
  m, _ = np.frexp(v)
  return v > 0 and m == 0.5


def _straight_through(op, name: str):
  """op in the forward pass (one op), the identity's gradient in the backward pass."""
  fn = jax.custom_jvp(lambda x: op(x))
  fn.defjvp(lambda primals, tangents: (fn(primals[0]), tangents[0]))
  fn.__name__ = name
  return fn


ste_round = _straight_through(jnp.round, "ste_round")   # half to even, like np.round
ste_floor = _straight_through(jnp.floor, "ste_floor")


def to_grid(x: jax.Array, frac_bits: int, limit: float) -> jax.Array:
  """x rounded to the grid 2^-frac_bits and clipped to [-limit, limit] (straight-through
  inside the clip, zero gradient outside, like a hard clip). Exact: scalings by powers of two,
  a rounding and a clip."""
  scale = float(2 ** frac_bits)
  units = jnp.clip(ste_round(x * scale), -limit * scale, limit * scale)
  return units * (1.0 / scale)


def weight_frac_bits(kernel: jax.Array) -> jax.Array:
  """f_w of the module doc: the largest f in [MIN_WEIGHT_FRAC_BITS, MAX_WEIGHT_FRAC_BITS] with
  2^ACT_BITS * max_c sum_i |round(w_ic 2^f)| <= 2^ACC_LIMIT_LOG2, as an int32 scalar.

  The bound is monotone in f (|round(2y)| >= |round(y)|), so the number of candidates that
  meet it gives f; all 32 are evaluated in one fused reduction (a far smaller program than one
  reduction per candidate: compilation time matters, every image shape compiles the network).
  Each evaluation is exact: rounding w 2^f (a power-of-two scaling) and summing integers are
  exact as long as the sum stays below 2^24, and where it does not the comparison with 2^13
  still fails, so every platform finds the same f. Rounding weights that are already on a grid
  2^-g with the bound met at g (exported models) to any f >= g leaves them unchanged.
  (`quantize_kernel` clips weights to +-2^MAX_WEIGHT_LOG2 first, so for fan-in up to 2^10
  even f = MIN_WEIGHT_FRAC_BITS meets the bound.)
  """
  w = jax.lax.stop_gradient(kernel).reshape(-1, kernel.shape[-1])
  limit = float(2 ** (ACC_LIMIT_LOG2 - ACT_BITS))
  scales = np.exp2(np.arange(MIN_WEIGHT_FRAC_BITS, MAX_WEIGHT_FRAC_BITS + 1)).astype(np.float32)
  units = jnp.abs(jnp.round(w[None] * scales[:, None, None]))     # [32, fan_in, O]
  l1 = jnp.max(jnp.sum(units, axis=1), axis=1)                     # [32]
  return MIN_WEIGHT_FRAC_BITS + jnp.sum(l1 <= limit).astype(jnp.int32) - 1


def pow2(e: jax.Array) -> jax.Array:
  """2^e as float32 for an int32 e in [-126, 127], built from its bits: exact on every
  platform (an exp2 may be a polynomial, and fast math may approximate it)."""
  return jax.lax.bitcast_convert_type(
      jax.lax.shift_left(e.astype(jnp.int32) + 127, jnp.int32(23)), jnp.float32)


def quantize_kernel(kernel: jax.Array, bias: jax.Array, act_frac_bits: int):
  """(kernel, bias, f_w): kernel clipped to +-2^MAX_WEIGHT_LOG2 and rounded to 2^-f_w, bias on
  2^-(F + f_w) clipped to 2^23 units. Only power-of-two scalings (multiplications, never
  divisions, which fast math may turn into approximate reciprocals) and roundings."""
  kernel = jnp.clip(kernel, -float(2 ** MAX_WEIGHT_LOG2), float(2 ** MAX_WEIGHT_LOG2))
  f_w = weight_frac_bits(kernel)
  k = ste_round(kernel * pow2(f_w)) * pow2(-f_w)
  b_frac = f_w + act_frac_bits
  b_lim = float(2 ** ACC_LIMIT_LOG2)
  b = jnp.clip(ste_round(bias * pow2(b_frac)), -b_lim, b_lim) * pow2(-b_frac)
  return k, b, f_w


def _patches(x: jax.Array, size: int, dilation: int) -> jax.Array:
  """[B, H, W, C] (already padded) -> [B, H', W', size * size * C] stride-1 patches."""
  h = x.shape[1] - (size - 1) * dilation
  w = x.shape[2] - (size - 1) * dilation
  return jnp.concatenate([x[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w]
                          for i in range(size) for j in range(size)], axis=-1)


def exact_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int, dilation: int
               ) -> jax.Array:
  """Convolution of exact fixed-point values, [B, H, W, I] x HWIO -> [B, H', W', O].

  On the CPU this is XLA's convolution (a GEMM over patches: exact for our bounds; checked by
  the portability tests). On other backends, whose convolution libraries may choose Winograd or
  FFT algorithms (not exact), a matmul over explicit patches at HIGHEST precision (no
  TF32 / bf16 passes). Stride-2 convs are only in the encoders, which are never exact.
  """
  if jax.default_backend() == "cpu" or stride != 1:
    return jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), ((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST)
  size = kernel.shape[0]
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  cols = _patches(xp, size, dilation)
  return jnp.dot(cols, kernel.reshape(-1, kernel.shape[-1]),
                 precision=jax.lax.Precision.HIGHEST)


def fixed_point_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array, *, range_log2: int,
                     stride: int = 1, padding: int = 0, dilation: int = 1) -> jax.Array:
  """One exact conv layer: input to its grid, weights to theirs, conv, bias, output grid.

  Args:
    x: [B, H, W, I] float32 (any values; clipped to [-2^range_log2, 2^range_log2]).
    kernel: [k, k, I, O] float32 weights; bias: [O].
    range_log2: r of the module doc (static, by layer role).
  Returns:
    [B, H', W', O] float32 on the grid 2^-FEATURE_BITS within [-FEATURE_RANGE, FEATURE_RANGE].
  """
  frac = ACT_BITS - range_log2
  a = to_grid(x, frac, float(2 ** range_log2))
  k, b, _ = quantize_kernel(kernel, bias, frac)
  y = exact_conv(a, k, stride, padding, dilation) + b
  return to_grid(y, FEATURE_BITS, FEATURE_RANGE)


@jax.custom_jvp
def coupling_coefficients(raw: jax.Array) -> jax.Array:
  """lambda = COEFF_TABLE[round(16 raw)] / 4096 (a lookup, never a platform sigmoid), with
  the sigmoid's gradient."""
  idx = jnp.clip(jnp.round(raw * float(2 ** COEFF_FRAC_BITS)), -256, 256).astype(jnp.int32)
  return jnp.asarray(COEFF_TABLE)[idx + 256].astype(jnp.float32) * (1.0 / 2 ** COEFF_Q_BITS)


@coupling_coefficients.defjvp
def _coupling_coefficients_jvp(primals, tangents):
  (raw,), (t,) = primals, tangents
  sig = jax.nn.sigmoid(raw)
  return coupling_coefficients(raw), sig * (1.0 - sig) * t


def coupling_term(lam: jax.Array, x: jax.Array) -> jax.Array:
  """lambda x rounded to 1/64 the way the integer coder does: floor((4096 lam x + 32) / 64)
  / 64 (lam on 1/4096, x integer pixels: the product is an integer below 2^20)."""
  prod = lam * x * float(2 ** COEFF_Q_BITS)
  return ste_floor((prod + 32.0) * (1.0 / 64.0)) * (1.0 / 64.0)


def snap_mixture(head: jax.Array, num_channels: int, num_mixtures: int, coupled: bool,
                 x_min: float, bin_width: float, up: Optional[jax.Array] = None,
                 mean_scale: float = 1.0) -> jax.Array:
  """Raw head outputs -> exact mixture parameters, in bin units, on their grids.

  Layout in and out: index p*C*K + c*K + k (p = 0 logits, 1 means, 2 log-scales, 3 coupling).
  Out: logits on 1/16; means (x - x_min) / b on 1/64 (RGB: the base means, to which the coder
  adds coupling_term(lambda, x) of the earlier channels); log-scales log(s / b) on 1/32 in
  [LOG_SCALE_MIN, LOG_SCALE_MAX]; raw coupling logits on 1/16 in [-16, 16] (lambda is
  `coupling_coefficients` of them, a table lookup).

  Args:
    head: [..., (3 or 4) C K] raw outputs (exact values on the feature grid).
    up: [..., 3] coarser pixels when means are residuals (pyramid families), else None.
    mean_scale: the means are multiplied by this (a power of two keeps them exact).
  """
  ck = num_channels * num_mixtures
  logits = to_grid(head[..., :ck], LOGIT_FRAC_BITS, 1e6)
  means = head[..., ck:2 * ck] * mean_scale
  log_b = float(np.log(bin_width))
  # log(s / b) = raw - log(b); the offset is added on the grid as a rounded integer constant.
  ls = head[..., 2 * ck:3 * ck]
  ls_grid = float(2 ** LOG_SCALE_FRAC_BITS)
  ls = jnp.clip(ste_round(ls * ls_grid) + round(-log_b * ls_grid), LOG_SCALE_MIN * ls_grid,
                LOG_SCALE_MAX * ls_grid) * (1.0 / ls_grid)
  m_grid = float(2 ** MEAN_FRAC_BITS)
  # Bins per unit: an integer for every exact config (checked by the configs), so that
  # (mu - x_min) / b is an exact product of grid values.
  inv_b = round(1.0 / bin_width)
  if abs(inv_b * bin_width - 1.0) > 1e-9:
    raise ValueError(f"exact models need an integer number of bins per unit, not {1 / bin_width}")
  if inv_b != 1 or x_min != 0.0:  # latents
    means = (means - x_min) * float(inv_b)
  means = ste_round(means * m_grid)
  parts = [logits, None, ls]
  if coupled:
    raw = to_grid(head[..., 3 * ck:4 * ck], COEFF_FRAC_BITS, COEFF_RAW_MAX)
    parts.append(raw)
    lam = coupling_coefficients(raw)
    if up is not None:
      k = num_mixtures
      lam3 = lam.reshape(lam.shape[:-1] + (3, k))
      up = up[..., None]                                   # [..., 3, 1]
      up_r = jnp.broadcast_to(up[..., 0, :], lam3.shape[:-2] + (k,))
      off_r = up_r * m_grid
      off_g = (up[..., 1, :] - coupling_term(lam3[..., 0, :], up[..., 0, :])) * m_grid
      off_b = (up[..., 2, :] - coupling_term(lam3[..., 1, :], up[..., 0, :])
               - coupling_term(lam3[..., 2, :], up[..., 1, :])) * m_grid
      means = means + jnp.concatenate([off_r, off_g, off_b], axis=-1)
  elif up is not None:
    raise ValueError("residual means need the coupled RGB layout")
  parts[1] = jnp.clip(means, MEAN64_MIN, MEAN64_MAX) * (1.0 / m_grid)
  return jnp.concatenate(parts, axis=-1)


def log_prob(params: jax.Array, symbols: jax.Array, num_bins: int, num_mixtures: int,
             coupled: bool) -> jax.Array:
  """log p (nats) of symbols under the exact mixture parameters of `snap_mixture`.

  The discretized logistic mixture in bin units (levels 0..A-1, edge bins take the tails), with
  the coupled means formed as the integer coder forms them; what the codec codes up to the
  resolution of its lookup tables (coding.exact_tables).

  Args:
    params: [..., (3 or 4) C K] output of `snap_mixture`.
    symbols: [..., C] symbol indices 0..A-1 (float32 or int).
  Returns:
    [..., C] float32 log-probabilities.
  """
  c = symbols.shape[-1]
  num_p = 4 if coupled else 3
  p = params.reshape(params.shape[:-1] + (num_p, c, num_mixtures))
  logits, means, log_scales = p[..., 0, :, :], p[..., 1, :, :], p[..., 2, :, :]
  t = symbols.astype(jnp.float32)
  if coupled:
    lam = coupling_coefficients(p[..., 3, :, :])
    x_r, x_g = t[..., 0:1], t[..., 1:2]
    means = jnp.stack([
        means[..., 0, :],
        means[..., 1, :] + coupling_term(lam[..., 0, :], x_r),
        means[..., 2, :] + coupling_term(lam[..., 1, :], x_r)
        + coupling_term(lam[..., 2, :], x_g)], axis=-2)
  return dmll.log_prob_from(logits, means, log_scales, t,
                            dmll.Alphabet(0.0, float(num_bins - 1), num_bins))
