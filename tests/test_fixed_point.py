"""The exact fixed-point network (models.fixed_point): bounds, exactness, grids, likelihood.

The portability of whole files across XLA flags and thread counts is tests/test_portable.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import losses
from l3c_jax import model_io
from l3c_jax.coding import exact_tables
from l3c_jax.models import fixed_point as fp
from l3c_jax.models import pyramid

BOUND = 2 ** fp.ACC_LIMIT_LOG2


def _units_l1(kernel, f_w):
  w = np.round(np.asarray(kernel, np.float64) * 2.0 ** f_w).reshape(-1, kernel.shape[-1])
  return np.abs(w).sum(0).max()


@pytest.mark.parametrize("shape,scale", [((3, 3, 32, 32), 0.06), ((1, 1, 32, 60), 1.0),
                                         ((3, 3, 35, 32), 5.0), ((1, 1, 3, 3), 1e-4)])
def test_weight_frac_bits_is_the_largest_grid_within_the_bound(np_rng, shape, scale):
  kernel = (np_rng.standard_normal(shape) * scale).astype(np.float32)
  f_w = int(fp.weight_frac_bits(jnp.asarray(kernel)))
  assert 0 <= f_w <= fp.MAX_WEIGHT_FRAC_BITS
  assert 2 ** fp.ACT_BITS * _units_l1(kernel, f_w) <= BOUND
  if f_w < fp.MAX_WEIGHT_FRAC_BITS:
    assert 2 ** fp.ACT_BITS * _units_l1(kernel, f_w + 1) > BOUND


def test_quantized_kernels_are_fixed_points(np_rng):
  """Exported weights are already on their grid: quantizing them again changes nothing (so a
  decoder that recomputes f_w from them gets the same network on every machine)."""
  kernel = jnp.asarray((np_rng.standard_normal((3, 3, 32, 16)) * 0.05).astype(np.float32))
  bias = jnp.asarray(np_rng.standard_normal(16).astype(np.float32))
  k1, b1, f1 = fp.quantize_kernel(kernel, bias, 6)
  k2, b2, f2 = fp.quantize_kernel(k1, b1, 6)
  assert int(f2) >= int(f1)
  np.testing.assert_array_equal(np.asarray(k1), np.asarray(k2))
  np.testing.assert_array_equal(np.asarray(b1), np.asarray(b2))
  assert not np.array_equal(np.asarray(k1), np.asarray(kernel))  # it did quantize


@pytest.mark.parametrize("range_log2,dilation", [(4, 1), (6, 2), (8, 1)])
def test_conv_is_exact_at_the_worst_case_input(np_rng, range_log2, dilation):
  """Inputs at +-R with the signs of the weights (the largest sum the bound allows) give the
  exact integer result, as a float64 / int64 oracle computes it."""
  c_in, c_out = 24, 8
  kernel = jnp.asarray((np_rng.standard_normal((3, 3, c_in, c_out)) * 0.1).astype(np.float32))
  bias = jnp.asarray((np_rng.standard_normal(c_out) * 0.1).astype(np.float32))
  frac = fp.ACT_BITS - range_log2
  k, b, f_w = fp.quantize_kernel(kernel, bias, frac)
  k_units = np.round(np.asarray(k, np.float64) * 2.0 ** int(f_w)).astype(np.int64)
  r = 2.0 ** range_log2
  # One output position sees the full kernel: input = R * sign(w[:, :, :, 0]).
  x = np.zeros((1, 3 + 2 * dilation, 3 + 2 * dilation, c_in), np.float32)
  for i in range(3):
    for j in range(3):
      x[0, 1 + i * dilation, 1 + j * dilation] = r * np.sign(k_units[i, j, :, 0])
  y = fp.exact_conv(fp.to_grid(jnp.asarray(x), frac, r), k, 1, dilation, dilation)
  y = np.asarray(y + b, np.float64)
  a_units = np.round(x.astype(np.float64) * 2.0 ** frac).astype(np.int64)
  b_units = np.round(np.asarray(b, np.float64) * 2.0 ** (frac + int(f_w))).astype(np.int64)
  centre = sum(int((a_units[0, 1 + i * dilation, 1 + j * dilation] * k_units[i, j, :, 0]).sum())
               for i in range(3) for j in range(3)) + int(b_units[0])
  assert abs(centre) < 2 ** 24
  assert centre - b_units[0] == 2 ** fp.ACT_BITS * np.abs(k_units[..., 0]).sum()
  assert y[0, 1 + dilation, 1 + dilation, 0] * 2.0 ** (frac + int(f_w)) == centre


def test_feature_tensors_are_on_their_grid(np_rng):
  x = jnp.asarray(np_rng.standard_normal((1, 8, 8, 16)).astype(np.float32) * 40)
  kernel = jnp.asarray((np_rng.standard_normal((3, 3, 16, 16)) * 0.3).astype(np.float32))
  y = np.asarray(fp.fixed_point_conv(x, kernel, jnp.zeros(16), range_log2=4, padding=1))
  units = y * 2.0 ** fp.FEATURE_BITS
  np.testing.assert_array_equal(units, np.round(units))
  assert np.abs(y).max() <= fp.FEATURE_RANGE


def test_coeff_table_is_a_rounded_sigmoid_and_the_coders():
  i = np.arange(-256, 257)
  expect = np.round(4096 / (1 + np.exp(-i / 16.0)))
  np.testing.assert_array_equal(fp.COEFF_TABLE, expect)
  assert fp.COEFF_TABLE[0] == 0 and fp.COEFF_TABLE[-1] == 4096
  # The model looks lambda up in its own copy; the coder in the shipped numerics file.
  np.testing.assert_array_equal(fp.COEFF_TABLE, exact_tables.load_tables()["COEFF_TABLE"])


def _oracle_log_prob(logits, means, log_scales, lam, symbols, num_bins):
  """float64 discretized logistic mixture with the coder's coupling rounding, bin units."""
  x = symbols.astype(np.float64)
  means = means.astype(np.float64).copy()
  if lam is not None:
    lq = fp.COEFF_TABLE[np.round(lam * 16).astype(int) + 256].astype(np.float64)
    term = lambda l, v: np.floor((l * v[..., None] + 32) / 64) / 64
    means[..., 1, :] += term(lq[..., 0, :], x[..., 0])
    means[..., 2, :] += term(lq[..., 1, :], x[..., 0]) + term(lq[..., 2, :], x[..., 1])
  inv_s = np.exp(-log_scales.astype(np.float64))
  sig = lambda u: 1 / (1 + np.exp(-u))
  t = x[..., None]
  upper = np.where(t >= num_bins - 1, 1.0, sig((t + 0.5 - means) * inv_s))
  lower = np.where(t <= 0, 0.0, sig((t - 0.5 - means) * inv_s))
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  return np.log(np.maximum((w * (upper - lower)).sum(-1), 1e-300))


@pytest.mark.parametrize("coupled", [True, False])
def test_exact_log_prob_matches_the_float64_oracle(np_rng, coupled):
  n, c, k = 500, 3 if coupled else 5, 4
  num_bins = 256 if coupled else 25
  raw = np_rng.standard_normal((n, (4 if coupled else 3) * c * k)).astype(np.float32)
  raw[:, c * k:2 * c * k] = np_rng.uniform(-0.5, 1.5, (n, c * k)) * (255 if coupled else 1)
  raw[:, 2 * c * k:3 * c * k] = np_rng.uniform(-3, 2, (n, c * k))
  x_min, width = (0.0, 1.0) if coupled else (-1.0, 2.0 / 24)
  params = fp.snap_mixture(jnp.asarray(raw), c, k, coupled, x_min, width)
  symbols = np_rng.integers(0, num_bins, (n, c))
  got = np.asarray(fp.log_prob(params, jnp.asarray(symbols, jnp.float32), num_bins, k, coupled))
  p = np.asarray(params, np.float64).reshape(n, 4 if coupled else 3, c, k)
  want = _oracle_log_prob(p[:, 0], p[:, 1], p[:, 2], p[:, 3] if coupled else None, symbols,
                          num_bins)
  ok = want > -9  # float32 differences of sigmoids lose relative precision in the tails
  np.testing.assert_allclose(got[ok], want[ok], atol=2e-3, rtol=1e-3)
  # The parameters are on their grids and within the clamps.
  ls = p[:, 2]
  assert ls.min() >= fp.LOG_SCALE_MIN and ls.max() <= fp.LOG_SCALE_MAX
  for idx, bits in ((0, fp.LOGIT_FRAC_BITS), (1, fp.MEAN_FRAC_BITS), (2, fp.LOG_SCALE_FRAC_BITS)):
    units = p[:, idx] * 2.0 ** bits
    np.testing.assert_array_equal(units, np.round(units))


@pytest.mark.slow
def test_exact_form_is_a_small_change_of_the_float_model():
  """The same parameters in exact form give nearly the same bits (quantization noise only),
  and gradients flow through the straight-through estimators."""
  config = pyramid.RGBInterlacedConfig(num_channels=8, num_res_blocks=1, num_mixtures=2,
                                       num_scales=1)
  params = model_io.random_model(config).params
  x = jnp.asarray(np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  exact = config.replace(exact=True)
  bpsp = jax.jit(lambda cfg, p: losses.bpsp_metrics(cfg, p, x)[1]["bpsp"], static_argnums=0)
  assert math.isclose(float(bpsp(config, params)), float(bpsp(exact, params)), rel_tol=0.05)
  grads = jax.jit(jax.grad(lambda p: losses.bpsp_metrics(exact, p, x)[0]))(params)
  norms = [float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(grads)]
  assert all(np.isfinite(norms)) and sum(v > 0 for v in norms) > len(norms) // 2
