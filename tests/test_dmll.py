"""Tests of the discretized logistic mixture likelihood (l3c_jax/likelihood/dmll.py).

Three kinds: (1) the float32 JAX code against the float64 oracle in reference_numpy.py on
well-conditioned random cases; (2) element-wise against the official L3C-PyTorch DMLL outputs
stored in the parity fixture (`dmll/*`, NCHW there, NHWC here); (3) properties.

Float32 floor behaviour (fixture README): where a bin's mass is below float32 resolution,
sigma(plus) - sigma(min) is quantized or cancels to 0 and hits the 1e-12 floor; float64 gives a
different (correct) value there. The official code and ours agree element-wise because both use the
float32 formula; the float64 oracle only agrees away from that regime (reference NLL < ~20 bits).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import likelihood
from l3c_jax.models import quantizer
import reference_numpy as ref

LN2 = math.log(2.0)
LATENT = likelihood.latent_alphabet(25, -1.0, 1.0)
RGB = likelihood.RGB_ALPHABET

# Jitted once per shape: eager op-by-op dispatch compiles every primitive separately (much slower).
_log_prob = jax.jit(likelihood.log_prob, static_argnums=(2, 3, 4))


def _nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def dmll_fixture(testdata_dir):
  with np.load(testdata_dir / "l3c_pytorch_tiny" / "expected.npz") as f:
    return {k[len("dmll/"):]: _nhwc(f[k]) for k in f.files if k.startswith("dmll/")}


def _random_rgb_case(rng, n, k, log_scale_range=(-1.5, 2.5)):
  """A well-conditioned coupled RGB case: heads [n, 12K], coupled means near the targets."""
  x = rng.integers(0, 256, size=(n, 3)).astype(np.float32)
  x[:4] = [[0, 0, 0], [255, 255, 255], [0, 128, 255], [255, 1, 254]]  # both edge bins
  logits = rng.normal(0, 1.5, size=(n, 3, k))
  coeff_raw = rng.normal(0, 2, size=(n, 3, k))
  lam = ref.sigmoid(coeff_raw)
  # Choose the raw means so that the coupled means are near the targets (interior branch well
  # conditioned); the coupling terms are up to ~500 so this really exercises them.
  log_scales = rng.uniform(*log_scale_range, size=(n, 3, k))
  # Coupled means within ~2 scales of the target: every component's bin mass is far above the floor.
  target_mu = x[:, :, None] + rng.normal(0, 1, size=(n, 3, k)) * np.exp(log_scales)
  raw_mu = target_mu.copy()
  raw_mu[:, 1] -= lam[:, 0] * x[:, 0:1]
  raw_mu[:, 2] -= lam[:, 1] * x[:, 0:1] + lam[:, 2] * x[:, 1:2]
  head = np.stack([logits, raw_mu, log_scales, coeff_raw], axis=1).reshape(n, 12 * k)
  return head.astype(np.float32), x


def _random_latent_case(rng, n, c, k, log_scale_range=(-3.0, 0.5)):
  levels = quantizer.quantization_levels(25)
  sym = rng.integers(0, 25, size=(n, c))
  sym[0] = 0
  sym[1] = 24
  z = levels[sym]
  logits = rng.normal(0, 1.5, size=(n, c, k))
  means = z[:, :, None] + rng.normal(0, 0.1, size=(n, c, k))
  log_scales = rng.uniform(*log_scale_range, size=(n, c, k))
  head = np.stack([logits, means, log_scales], axis=1).reshape(n, 3 * c * k)
  return head.astype(np.float32), z.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# (1) float64 oracle
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 10])
def test_log_prob_rgb_coupled_matches_float64_oracle(np_rng, k):
  head, x = _random_rgb_case(np_rng, 300, k)
  got = _log_prob(head, x, RGB, k, True)
  want = ref.dmll_log_prob(head, x, 0.0, 255.0, 256, k, coupled=True)
  assert got.shape == (300, 3) and got.dtype == jnp.float32
  assert np.all(want > -20)  # really well conditioned: far from the float32 floor regime
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 10])
def test_log_prob_latent_matches_float64_oracle(np_rng, k):
  head, z = _random_latent_case(np_rng, 300, 5, k)
  got = _log_prob(head, z, LATENT, k, False)
  want = ref.dmll_log_prob(head, z, -1.0, 1.0, 25, k, coupled=False)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_float64_oracle_agrees_with_official_dmll_outside_float32_floor(dmll_fixture):
  # Validates the oracle itself against L3C-PyTorch (so tests (1) compare against the right model).
  f = dmll_fixture
  rgb = -ref.dmll_log_prob(f["rgb_head"], f["rgb_targets"], 0.0, 255.0, 256, 10, True) / LN2
  ok = f["rgb_nll_bits"] < 20
  assert ok.mean() > 0.9
  np.testing.assert_allclose(rgb[ok], f["rgb_nll_bits"][ok], rtol=0, atol=1e-3)
  lat = -ref.dmll_log_prob(f["z_head"], f["z_targets"], -1.0, 1.0, 25, 10, False) / LN2
  np.testing.assert_allclose(lat, f["z_nll_bits"], rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# (2) official DMLL outputs (fixture `dmll/*`)
# ------------------------------------------------------------------------------------------------

def test_log_prob_rgb_matches_official_dmll_elementwise(dmll_fixture):
  # Op by op (eager), our float32 formula is the official one in the same order: 1e-4 bits.
  f = dmll_fixture
  bits = -np.asarray(likelihood.log_prob(f["rgb_head"], f["rgb_targets"], RGB, 10, True)) / LN2
  assert bits.shape == f["rgb_nll_bits"].shape == (1, 16, 16, 3)
  np.testing.assert_allclose(bits, f["rgb_nll_bits"], rtol=0, atol=1e-4)
  np.testing.assert_allclose(bits.sum(), 4470.624528467655, rtol=1e-6)  # expected.json dmll_check


def test_jitted_log_prob_rgb_matches_official_dmll_within_float32_conditioning(dmll_fixture):
  # Under jit, XLA contracts the coupled mean m + l_r x_R + l_g x_G into FMAs: mu (~200) moves by
  # 1-2 ulps (3e-5), which at the log-scale clamp (s = e^-7 = 9e-4) moves the logistic argument by
  # ~0.02 and single elements by up to ~1e-3 bits. Totals stay within 1e-6 relative.
  f = dmll_fixture
  bits = -np.asarray(_log_prob(f["rgb_head"], f["rgb_targets"], RGB, 10, True)) / LN2
  np.testing.assert_allclose(bits, f["rgb_nll_bits"], rtol=0, atol=2e-3)
  np.testing.assert_allclose(bits.sum(), 4470.624528467655, rtol=1e-6)


def test_log_prob_latent_matches_official_dmll_elementwise(dmll_fixture):
  f = dmll_fixture
  for fn in (likelihood.log_prob, _log_prob):  # eager and jitted (no coupling: both 1e-4 bits)
    bits = -np.asarray(fn(f["z_head"], f["z_targets"], LATENT, 10, False)) / LN2
    assert bits.shape == f["z_nll_bits"].shape == (1, 8, 8, 5)
    np.testing.assert_allclose(bits, f["z_nll_bits"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(bits.sum(), 1064.0368117392063, rtol=1e-6)


def test_official_latent_targets_are_our_levels(dmll_fixture):
  levels = quantizer.quantization_levels(25)
  t = dmll_fixture["z_targets"]
  np.testing.assert_array_equal(quantizer.from_symbols(quantizer.to_symbols(t, levels), levels), t)


# ------------------------------------------------------------------------------------------------
# (3) properties
# ------------------------------------------------------------------------------------------------

def _wild_rgb_case(rng, n=200, k=3):
  """Heads over a wide range (means anywhere, log-scales from below the clamp to +20)."""
  head = np.concatenate([
      rng.normal(0, 5, size=(n, 3 * k)),             # logits
      rng.uniform(-300, 600, size=(n, 3 * k)),       # raw means
      rng.uniform(-30, 20, size=(n, 3 * k)),         # raw log-scales (clamped at -7)
      rng.normal(0, 4, size=(n, 3 * k))], axis=1)    # coupling pre-activations
  x = rng.integers(0, 256, size=(n, 3)).astype(np.float32)
  x[: n // 4] = 0
  x[n // 4: n // 2] = 255
  return head.astype(np.float32), x


# log p = logsumexp_k(log P_k + log pi_k) is computed in float32; where p = 1 to float32 precision
# (edge bin, all mass in the tail) the rounding of logsumexp can give +1 ulp (6e-8) instead of 0.
FLOAT32_LOGSUMEXP_SLACK = 1e-6


def test_log_prob_is_at_most_zero(np_rng):
  head, x = _wild_rgb_case(np_rng)
  lp = np.asarray(_log_prob(head, x, RGB, 3, True))
  assert np.all(np.isfinite(lp))
  assert np.all(lp <= FLOAT32_LOGSUMEXP_SLACK), lp.max()
  assert np.mean(lp > -1e-3) > 0.05 and np.mean(lp < -1.0) > 0.3  # both regimes covered
  lhead, z = _random_latent_case(np_rng, 200, 5, 3, log_scale_range=(-10, 20))
  llp = np.asarray(_log_prob(lhead, z, LATENT, 3, False))
  assert np.all(np.isfinite(llp)) and np.all(llp <= FLOAT32_LOGSUMEXP_SLACK), llp.max()


def test_log_prob_values_and_gradients_finite_at_edges():
  # Every combination of target (both edge bins and their neighbours), mean (below, at, inside,
  # above the range) and raw log-scale (below the -7 clamp, at it, 0, +20) in one batch.
  k = 2
  targets = np.array([0.0, 1.0, 254.0, 255.0])
  means = np.array([-50.0, 0.0, 128.0, 400.0])
  log_scales = np.array([-100.0, -7.0, 0.0, 20.0])
  t, m, ls = (a.ravel() for a in np.meshgrid(targets, means, log_scales, indexing="ij"))
  n = t.size
  head = np.zeros((n, 4, 3, k), np.float32)
  head[:, 1] = m[:, None, None]
  head[:, 2] = ls[:, None, None]
  head[:, 3] = 1.0
  head = head.reshape(n, 12 * k)
  x = np.repeat(t[:, None], 3, axis=1).astype(np.float32)

  def total(h, v):
    return jnp.sum(likelihood.log_prob(h, v, RGB, k, True))

  val = jax.jit(total)(head, x)
  g_head, g_x = jax.jit(jax.grad(total, argnums=(0, 1)))(head, x)
  assert np.isfinite(val)
  assert np.all(np.isfinite(g_head)) and np.all(np.isfinite(g_x))


def test_log_prob_gradients_finite_for_wild_heads(np_rng):
  head, x = _wild_rgb_case(np_rng)
  g = jax.jit(jax.grad(lambda h: jnp.sum(likelihood.log_prob(h, x, RGB, 3, True))))(head)
  assert np.all(np.isfinite(g))
  lhead, z = _random_latent_case(np_rng, 100, 5, 3, log_scale_range=(-30, 20))
  lg = jax.jit(jax.grad(lambda h, t: jnp.sum(likelihood.log_prob(h, t, LATENT, 3, False)),
                        argnums=(0, 1)))(lhead, z)
  assert all(np.all(np.isfinite(a)) for a in lg)


def test_log_scales_are_clamped_below_at_minus_seven(np_rng):
  head, x = _random_rgb_case(np_rng, 50, 2)
  p = head.reshape(50, 4, 3, 2).copy()

  def lp_with(raw_log_scale):
    p[:, 2] = raw_log_scale
    return np.asarray(_log_prob(p.reshape(50, 24), x, RGB, 2, True))

  np.testing.assert_array_equal(lp_with(-7.0), lp_with(-100.0))
  assert not np.array_equal(lp_with(-6.9), lp_with(-7.0))
  mp = likelihood.split_params(p.reshape(50, 24), 3, 2, True, -7.0)
  assert float(jnp.min(mp.log_scales)) == -7.0


def test_coupling_only_uses_earlier_channels(np_rng):
  head, x = _random_rgb_case(np_rng, 100, 3)
  base = np.asarray(_log_prob(head, x, RGB, 3, True))

  def with_changed(channel):
    x2 = x.copy()
    x2[:, channel] = np.where(x[:, channel] < 128, x[:, channel] + 7, x[:, channel] - 7)
    return np.asarray(_log_prob(head, x2, RGB, 3, True))

  changed_b = with_changed(2)
  np.testing.assert_array_equal(changed_b[:, :2], base[:, :2])   # p(R), p(G) ignore x_B
  assert np.mean(changed_b[:, 2] != base[:, 2]) > 0.9

  changed_g = with_changed(1)
  np.testing.assert_array_equal(changed_g[:, 0], base[:, 0])      # p(R) ignores x_G
  assert np.mean(changed_g[:, 2] != base[:, 2]) > 0.9             # p(B) depends on x_G

  changed_r = with_changed(0)
  assert np.mean(changed_r[:, 1] != base[:, 1]) > 0.9             # p(G) depends on x_R
  assert np.mean(changed_r[:, 2] != base[:, 2]) > 0.9             # p(B) depends on x_R


def test_coupling_coefficients_of_later_channels_do_not_change_p_red(np_rng):
  head, x = _random_rgb_case(np_rng, 100, 2)
  base = np.asarray(_log_prob(head, x, RGB, 2, True))
  h = head.reshape(100, 4, 3, 2).copy()
  h[:, 3] += 3.0                                                  # all lambdas
  h[:, 1, 1:] += 5.0                                              # raw means of G and B
  lp = np.asarray(_log_prob(h.reshape(100, 24), x, RGB, 2, True))
  np.testing.assert_array_equal(lp[:, 0], base[:, 0])
  assert np.mean(lp[:, 1:] != base[:, 1:]) > 0.9


def test_channel_mixture_matches_split_params_and_coupling(np_rng):
  head, x = _random_rgb_case(np_rng, 20, 2)
  mp = ref.split_head(head, 3, 2, True)
  mu = ref.coupled_means(mp["means"], mp["coeffs"], x)
  for c in range(3):
    logits, means, log_scales = likelihood.channel_mixture(head, c, 3, 2, True, x_prev=x)
    np.testing.assert_allclose(logits, mp["logits"][:, c], rtol=1e-6)
    np.testing.assert_allclose(means, mu[:, c], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_scales, mp["log_scales"][:, c], rtol=1e-6)
