"""Tests of the fixed-center quantizer (l3c_jax/models/quantizer.py) against the float64 oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax.models import quantizer
import reference_numpy as ref

L = 25
SIGMA = 2.0


def _levels():
  return quantizer.quantization_levels(L, -1.0, 1.0)


def _away_from_midpoints(y, levels, margin):
  """Mask of y farther than `margin` from every decision boundary (midpoint between levels)."""
  mids = (levels[1:].astype(np.float64) + levels[:-1]) / 2
  return np.min(np.abs(y[..., None].astype(np.float64) - mids), axis=-1) > margin


def test_quantization_levels_bit_identical_to_official_levels(testdata_dir):
  with np.load(testdata_dir / "l3c_pytorch_tiny" / "weights_tiny.npz") as sd:
    official = [sd[f"nets.{i}.{k}levels"] for i in range(3) for k in ("enc.", "enc.q.")]
  ours = _levels()
  assert ours.dtype == np.float32
  for lv in official:
    # Compare the bit patterns: -0.0 vs 0.0 or a 1-ulp difference must fail too.
    np.testing.assert_array_equal(ours.view(np.uint32), lv.astype(np.float32).view(np.uint32))


def test_quantization_levels_close_to_linspace():
  ours = _levels()
  np.testing.assert_allclose(ours, ref.quantization_levels(L), rtol=0, atol=1e-7)
  assert np.all(np.diff(ours) > 0)
  for num, lo, hi in [(5, -2.0, 3.0), (2, 0.0, 1.0), (256, 0.0, 255.0)]:
    np.testing.assert_allclose(quantizer.quantization_levels(num, lo, hi),
                               ref.quantization_levels(num, lo, hi), rtol=1e-6, atol=1e-6)


def test_to_symbols_matches_oracle(np_rng):
  levels = _levels()
  y = np_rng.uniform(-1.6, 1.6, size=(4, 7, 5)).astype(np.float32)  # includes out-of-range values
  y[0, 0, :] = levels[[0, 3, 12, 20, 24]]                            # exactly on centers
  ok = _away_from_midpoints(y, levels, 1e-5)  # float32 rounding decides exact near-ties
  sym = np.asarray(jax.jit(quantizer.to_symbols)(y, levels))
  assert sym.dtype == np.int32
  np.testing.assert_array_equal(sym[ok], ref.hard_symbols(y, levels)[ok])
  np.testing.assert_array_equal(sym[0, 0], [0, 3, 12, 20, 24])


def test_to_symbols_snaps_out_of_range_to_end_levels():
  y = jnp.array([-100.0, -1.05, 1.05, 1e6])
  np.testing.assert_array_equal(quantizer.to_symbols(y, _levels()), [0, 0, L - 1, L - 1])


def test_to_symbols_breaks_exact_ties_to_lower_index():
  # With levels (-1, 0, 1) the midpoints +-0.5 are exact ties in float32; torch.min picks the
  # first minimum.
  levels = jnp.array([-1.0, 0.0, 1.0])
  np.testing.assert_array_equal(quantizer.to_symbols(jnp.array([-0.5, 0.5]), levels), [0, 1])


def test_symbols_values_round_trip():
  levels = _levels()
  sym = jnp.arange(L, dtype=jnp.int32).reshape(1, 5, 5)
  values = quantizer.from_symbols(sym, levels)
  np.testing.assert_array_equal(values, levels.reshape(1, 5, 5))
  np.testing.assert_array_equal(quantizer.to_symbols(values, levels), sym)


def test_hard_quantize_values_match_oracle(np_rng):
  levels = _levels()
  y = np_rng.normal(0, 0.7, size=(3, 6, 5)).astype(np.float32)
  ok = _away_from_midpoints(y, levels, 1e-5)
  z, sym = quantizer.quantize(y, levels, SIGMA, train=False)
  want = ref.hard_quantize(y, levels).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(z)[ok], want[ok])
  np.testing.assert_array_equal(z, quantizer.from_symbols(sym, levels))


def test_soft_quantize_matches_oracle(np_rng):
  levels = _levels()
  y = np_rng.uniform(-1.3, 1.3, size=(64,)).astype(np.float32)
  for sigma in (0.5, 2.0, 50.0):
    got = jax.jit(quantizer.soft_quantize, static_argnums=2)(y, levels, sigma)
    np.testing.assert_allclose(got, ref.soft_quantize(y, levels, sigma), rtol=0, atol=2e-6)


def test_soft_quantize_approaches_hard_as_sigma_grows(np_rng):
  levels = _levels()
  y = np_rng.uniform(-1.2, 1.2, size=(256,)).astype(np.float32)
  y = y[_away_from_midpoints(y, levels, 0.01)]
  hard = ref.hard_quantize(y, levels)
  errors = [float(np.max(np.abs(np.asarray(quantizer.soft_quantize(y, levels, s)) - hard)))
            for s in (2.0, 20.0, 200.0, 2e3, 2e4, 2e5)]
  assert all(a > b for a, b in zip(errors[:3], errors[1:4])), errors  # strictly shrinking
  assert errors[0] > 1e-3, errors                                     # sigma=2 is really soft
  assert errors[-1] < 1e-6, errors                                    # ... and large sigma is hard


def test_quantize_train_forward_value_is_hard_value(np_rng):
  levels = _levels()
  y = np_rng.normal(0, 0.6, size=(2, 4, 4, 5)).astype(np.float32)
  z_train, sym_train = quantizer.quantize(y, levels, SIGMA, train=True)
  z_eval, sym_eval = quantizer.quantize(y, levels, SIGMA, train=False)
  np.testing.assert_array_equal(sym_train, sym_eval)
  # y_soft + (y_hard - y_soft) may be 1 ulp off y_hard in float32; the official code copies exactly.
  np.testing.assert_allclose(z_train, z_eval, rtol=0, atol=1e-6)


def test_straight_through_gradient_equals_soft_gradient(np_rng):
  levels = _levels()
  y = np_rng.uniform(-1.1, 1.1, size=(40,)).astype(np.float32)
  w = np_rng.normal(size=(40,)).astype(np.float32)  # a random cotangent

  g_ste = jax.grad(lambda v: jnp.sum(w * quantizer.quantize(v, levels, SIGMA, True)[0]))(y)
  g_soft = jax.grad(lambda v: jnp.sum(w * quantizer.soft_quantize(v, levels, SIGMA)))(y)
  g_hard = jax.grad(lambda v: jnp.sum(w * quantizer.quantize(v, levels, SIGMA, False)[0]))(y)
  np.testing.assert_array_equal(g_ste, g_soft)
  np.testing.assert_allclose(g_soft, w * ref.soft_quantize_grad(y, levels, SIGMA),
                             rtol=1e-4, atol=1e-6)
  assert np.all(np.asarray(g_hard) == 0)
  assert np.any(np.abs(np.asarray(g_ste)) > 1e-3)


@pytest.mark.parametrize("num_levels", [2, 25])
def test_quantize_output_shapes_and_dtypes(num_levels):
  levels = quantizer.quantization_levels(num_levels)
  y = jnp.zeros((2, 3, 4, 5), jnp.float32)
  for train in (False, True):
    z, sym = quantizer.quantize(y, levels, SIGMA, train)
    assert z.shape == y.shape and z.dtype == jnp.float32
    assert sym.shape == y.shape and sym.dtype == jnp.int32
