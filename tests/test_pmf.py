"""Tests of the dense PMF tables used for entropy coding (l3c_jax/likelihood/pmf.py)."""

import jax
import numpy as np
import pytest

from l3c_jax import likelihood
from l3c_jax.models import quantizer
import reference_numpy as ref

RGB = likelihood.RGB_ALPHABET
LATENT = likelihood.latent_alphabet(25, -1.0, 1.0)

_pmf = jax.jit(likelihood.mixture_pmf, static_argnums=3)
_log_prob = jax.jit(likelihood.log_prob, static_argnums=(2, 3, 4))
_channel_mixture = jax.jit(likelihood.channel_mixture, static_argnums=(1, 2, 3, 4))


def _wild_mixture(rng, n, k, alphabet):
  """Mixture params over a wide range: means in and beyond the alphabet, log-scales -7 .. 6.

  The second half of the rows has log-scales >= 0 (well conditioned in float32).
  """
  span = alphabet.x_max - alphabet.x_min
  logits = rng.normal(0, 3, size=(n, k))
  means = rng.uniform(alphabet.x_min - 0.3 * span, alphabet.x_max + 0.3 * span, size=(n, k))
  log_scales = rng.uniform(-7.0, 6.0, size=(n, k))
  log_scales[n // 2:] = rng.uniform(0.0, 6.0, size=(n - n // 2, k))  # half the rows smooth
  log_scales[:8] = -7.0                                   # the clamp value (sharpest allowed)
  means[:4] = alphabet.x_min + alphabet.bin_width * np.arange(4)[:, None]  # exactly on levels
  return [a.astype(np.float32) for a in (logits, means, log_scales)]


@pytest.mark.parametrize("alphabet", [RGB, LATENT], ids=["L256", "L25"])
def test_mixture_pmf_rows_sum_to_one_and_are_nonnegative(np_rng, alphabet):
  logits, means, log_scales = _wild_mixture(np_rng, 512, 10, alphabet)
  pmf = np.asarray(_pmf(logits, means, log_scales, alphabet))
  assert pmf.shape == (512, alphabet.num_bins) and pmf.dtype == np.float32
  assert np.all(pmf >= 0)
  assert np.all(np.isfinite(pmf))
  np.testing.assert_array_less(np.abs(pmf.astype(np.float64).sum(axis=1) - 1.0), 1e-5)


@pytest.mark.parametrize("alphabet", [RGB, LATENT], ids=["L256", "L25"])
def test_mixture_pmf_matches_float64_oracle(np_rng, alphabet):
  logits, means, log_scales = _wild_mixture(np_rng, 256, 4, alphabet)
  pmf = np.asarray(_pmf(logits, means, log_scales, alphabet))
  want = ref.mixture_pmf(logits, means, log_scales, alphabet.x_min, alphabet.x_max,
                         alphabet.num_bins)
  np.testing.assert_allclose(want.sum(axis=1), 1.0, rtol=0, atol=1e-12)  # the oracle is exact
  # float32 conditioning: a CDF difference is accurate to a few ulps of 1, plus the rounding of
  # the logistic argument (edge - mu) / s, i.e. ~ulp(|edge| + |mu|) / s, times sigma' <= 1/4.
  arg_err = np.exp(-log_scales.astype(np.float64)).max(axis=1) * 2.0**-22 * (
      max(abs(alphabet.x_min), abs(alphabet.x_max)) + np.abs(means).max(axis=1))
  tol = 2e-6 + 0.25 * arg_err
  err = np.abs(pmf - want).max(axis=1)
  assert np.all(err <= tol), (err / tol).max()
  well_conditioned = log_scales.min(axis=1) >= 0.0
  assert well_conditioned.sum() > 50
  assert err[well_conditioned].max() < 1e-6


def test_mixture_pmf_edge_bins_take_the_tails():
  # One component far below the range: all mass on level 0; far above: all on the last level.
  logits = np.zeros((2, 1), np.float32)
  means = np.array([[-1e4], [1e4]], np.float32)
  log_scales = np.zeros((2, 1), np.float32)
  pmf = np.asarray(_pmf(logits, means, log_scales, RGB))
  np.testing.assert_allclose(pmf[0, 0], 1.0, atol=1e-7)
  np.testing.assert_allclose(pmf[1, -1], 1.0, atol=1e-7)


def test_log_of_rgb_pmf_at_target_equals_log_prob(np_rng):
  """The coding tables (channel by channel, coupled on the true previous channels) are the model."""
  n, k = 300, 10
  x = np_rng.integers(0, 256, size=(n, 3)).astype(np.float32)
  x[:6] = [[0, 0, 0], [255, 255, 255], [0, 255, 1], [255, 0, 254], [1, 1, 1], [254, 254, 254]]
  coeff_raw = np_rng.normal(0, 1, size=(n, 3, k))
  lam = ref.sigmoid(coeff_raw)
  raw_mu = x[:, :, None] + np_rng.normal(0, 20, size=(n, 3, k))  # coupled means near x ...
  raw_mu[:, 1] -= lam[:, 0] * x[:, 0:1]                          # ... after the coupling terms
  raw_mu[:, 2] -= lam[:, 1] * x[:, 0:1] + lam[:, 2] * x[:, 1:2]
  head = np.stack([np_rng.normal(0, 2, size=(n, 3, k)), raw_mu,
                   np_rng.uniform(-2.0, 4.0, size=(n, 3, k)), coeff_raw],
                  axis=1).reshape(n, 12 * k).astype(np.float32)
  lp = np.asarray(_log_prob(head, x, RGB, k, True))                          # [n, 3]
  for c in range(3):
    logits, means, log_scales = _channel_mixture(head, c, 3, k, True, x)
    pmf = np.asarray(_pmf(logits, means, log_scales, RGB)).astype(np.float64)
    p_target = pmf[np.arange(n), x[:, c].astype(np.int64)]
    # The 1e-12 floor of log_prob is inactive wherever p >> 1e-12; compare there.
    active = p_target > 1e-4
    assert active.mean() > 0.8
    np.testing.assert_allclose(np.log(p_target[active]), lp[active, c], rtol=0, atol=1e-3)
    np.testing.assert_allclose(p_target, np.exp(lp[:, c]), rtol=0, atol=2e-6)


def test_log_of_latent_pmf_at_target_equals_log_prob(np_rng):
  n, c_q, k = 200, 5, 3
  levels = quantizer.quantization_levels(25)
  sym = np_rng.integers(0, 25, size=(n, c_q))
  sym[0], sym[1] = 0, 24
  z = levels[sym]
  head = np.concatenate([
      np_rng.normal(0, 2, size=(n, c_q * k)),
      np_rng.uniform(-1.2, 1.2, size=(n, c_q * k)),
      np_rng.uniform(-4.0, 0.0, size=(n, c_q * k))], axis=1).astype(np.float32)
  lp = np.asarray(_log_prob(head, z, LATENT, k, False))
  for c in range(c_q):
    logits, means, log_scales = _channel_mixture(head, c, c_q, k, False, None)
    pmf = np.asarray(_pmf(logits, means, log_scales, LATENT)).astype(np.float64)
    p_target = pmf[np.arange(n), sym[:, c]]
    active = p_target > 1e-4
    assert active.mean() > 0.5
    np.testing.assert_allclose(np.log(p_target[active]), lp[active, c], rtol=0, atol=1e-3)
    np.testing.assert_allclose(p_target, np.exp(lp[:, c]), rtol=0, atol=2e-6)
