"""Tests of mixture sampling (l3c_jax/likelihood/sampling.py), the scale-wise sampler
(l3c_jax/sampling.py) and experiments/sample.py."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

import launchers

from l3c_jax import figures, likelihood, losses, model_io, sampling
from l3c_jax.likelihood import sampling as mixture_sampling
from l3c_jax.models import quantizer
from l3c_jax.models.config import L3CConfig, RGBBicubicPhasedConfig, RGBInterlacedConfig
from conftest import random_params

RGB = likelihood.RGB_ALPHABET
LATENT = likelihood.latent_alphabet(25, -1.0, 1.0)
LEVELS = quantizer.quantization_levels(25, -1.0, 1.0)

_sample = jax.jit(mixture_sampling.sample_mixture,
                  static_argnames=("alphabet", "num_mixtures", "coupled", "snap"))
_pmf = jax.jit(likelihood.mixture_pmf, static_argnums=3)


def _head(logits, means, log_scales, coeffs_raw=None):
  """Raw head [..., P*C*K] from per-channel parameters [..., C, K] (layout p*C*K + c*K + k)."""
  parts = [logits, means, log_scales] + ([coeffs_raw] if coeffs_raw is not None else [])
  p = np.stack([np.asarray(a, np.float32) for a in parts], axis=-3)
  return jnp.asarray(p.reshape(p.shape[:-3] + (-1,)))


def _dominant_logits(shape, k_chosen=0):
  """Logits that make Gumbel-max always pick one component (Gumbel noise is within +-12)."""
  logits = np.full(shape, -50.0, np.float32)
  logits[..., k_chosen] = 50.0
  return logits


def test_sample_mixture_tiny_scale_gives_clamped_rounded_mean_rgb(np_rng):
  n, k = 64, 3
  means = np_rng.uniform(-40, 300, (n, 3, k)).astype(np.float32)
  # Keep the chosen means away from .5 so the +-0.01 logistic noise at s = e^-7 cannot flip them.
  means[..., 1] = np.round(means[..., 1]) + np_rng.uniform(-0.4, 0.4, (n, 3))
  head = _head(_dominant_logits((n, 3, k), 1), means, np.full((n, 3, k), -7.0),
               np.full((n, 3, k), -40.0))  # coupling coefficients sigmoid(-40) ~ 0
  got = np.asarray(_sample(head, jax.random.key(1), RGB, k, True))
  want = np.clip(np.round(means[..., 1]), 0, 255)
  np.testing.assert_array_equal(got, want)
  assert ((want == 0).any() and (want == 255).any())  # both clamps exercised


def test_sample_mixture_tiny_scale_gives_nearest_level_latent(np_rng):
  n, k = 64, 2
  idx = np_rng.integers(0, 25, (n, 5))
  means = np.repeat((LEVELS[idx] + np_rng.uniform(-0.03, 0.03, (n, 5)))[..., None], k, -1)
  means[:4, 0, :] = [[-3.0], [-1.05], [1.2], [7.0]]  # outside: clamped to the end levels
  head = _head(np.zeros((n, 5, k)), means, np.full((n, 5, k), -7.0))
  got = np.asarray(_sample(head, jax.random.key(2), LATENT, k, False, levels=LEVELS))
  want = LEVELS[idx]
  want[:4, 0] = [LEVELS[0], LEVELS[0], LEVELS[-1], LEVELS[-1]]
  np.testing.assert_array_equal(got, want)


def _chi_square(counts, pmf):
  """Pearson statistic over bins with expected count >= 5 (rest pooled) and its dof."""
  n = counts.sum()
  expected = pmf * n
  big = expected >= 5
  obs = np.append(counts[big], counts[~big].sum())
  exp = np.append(expected[big], expected[~big].sum())
  keep = exp > 0
  return float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()), int(keep.sum()) - 1


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("alphabet", [LATENT, RGB], ids=["L25", "L256"])
def test_sample_mixture_histogram_matches_pmf(np_rng, k, alphabet):
  span = alphabet.x_max - alphabet.x_min
  logits = np_rng.normal(0, 1, (1, 1, k)).astype(np.float32)
  means = np_rng.uniform(alphabet.x_min - 0.1 * span, alphabet.x_max, (1, 1, k))
  means[0, 0, 0] = alphabet.x_min + 0.02 * span  # mass in the left tail bin
  log_scales = np.log(np_rng.uniform(0.5, 4.0, (1, 1, k)) * alphabet.bin_width)
  n = 40000
  head = jnp.broadcast_to(_head(logits, means, log_scales), (n, 3 * k))
  got = np.asarray(_sample(head, jax.random.key(k), alphabet, k, False))[:, 0]
  sym = np.round((got - alphabet.x_min) / alphabet.bin_width).astype(np.int64)
  np.testing.assert_allclose(got, alphabet.x_min + sym * alphabet.bin_width, atol=1e-6)
  counts = np.bincount(sym, minlength=alphabet.num_bins)
  pmf = np.asarray(_pmf(logits[0], means[0].astype(np.float32),
                        log_scales[0].astype(np.float32), alphabet))[0].astype(np.float64)
  stat, dof = _chi_square(counts, pmf / pmf.sum())
  assert dof >= 4
  # chi2 has mean dof and std sqrt(2 dof); 6 std is far beyond chance, far below a wrong PMF.
  assert stat < dof + 6 * np.sqrt(2 * dof), (stat, dof)


def test_sample_mixture_histogram_fails_for_a_shifted_pmf(np_rng):
  """The chi-square check above can fail: a half-bin shift of the PMF is detected."""
  logits, means, log_scales = np.zeros((1, 1, 1)), np.full((1, 1, 1), 0.1), np.full((1, 1, 1), -2.5)
  head = jnp.broadcast_to(_head(logits, means, log_scales), (40000, 3))
  got = np.asarray(_sample(head, jax.random.key(0), LATENT, 1, False))[:, 0]
  counts = np.bincount(np.round((got + 1) / LATENT.bin_width).astype(np.int64), minlength=25)
  pmf = np.asarray(_pmf(logits[0].astype(np.float32),
                        (means[0] + LATENT.bin_width / 2).astype(np.float32),
                        log_scales[0].astype(np.float32), LATENT))[0].astype(np.float64)
  stat, dof = _chi_square(counts, pmf / pmf.sum())
  assert stat > dof + 6 * np.sqrt(2 * dof)


def test_sample_mixture_coupling_with_unit_coefficients_follows_r(np_rng):
  n, k = 2000, 2
  means = np.zeros((n, 3, k), np.float32)
  means[:, 0] = 150.0    # R broad: s = e^2.5 ~ 12
  means[:, 1] = -60.0    # G = R - 60
  means[:, 2] = -230.0   # B = R + G - 230 = 2R - 290, often clamped at 0 or 255 is not reached
  log_scales = np.full((n, 3, k), -7.0, np.float32)
  log_scales[:, 0] = 2.5
  coeffs_raw = np.full((n, 3, k), 40.0, np.float32)  # sigmoid(40) = 1 in float32
  head = _head(np_rng.normal(0, 1, (n, 3, k)), means, log_scales, coeffs_raw)
  x = np.asarray(_sample(head, jax.random.key(3), RGB, k, True))
  r, g, b = x[:, 0], x[:, 1], x[:, 2]
  assert r.std() > 10  # R really varies
  np.testing.assert_array_equal(g, np.clip(r - 60, 0, 255))
  np.testing.assert_array_equal(b, np.clip(r + g - 230, 0, 255))


def _coupled_conditional_pmf(head, channel, x_prev, k):
  """P(channel | earlier channels = x_prev rows): [N, 256] from dmll.channel_mixture."""
  lg, mu, ls = likelihood.channel_mixture(head, channel, 3, k, True, x_prev)
  return np.asarray(_pmf(lg, mu, ls, RGB)).astype(np.float64)


def test_sample_mixture_coupled_joint_matches_the_likelihood(np_rng):
  """G and B marginals equal sum over R (and G) of P(R) P(G|R) P(B|R,G) from dmll.

  The coupling coefficients differ per component and R favours another component than G and B,
  so using the wrong component's coefficient (e.g. R's choice for G) changes the marginals.
  """
  k = 2
  logits = np.array([[3.0, -3.0], [-2.0, 2.0], [-2.0, 2.0]], np.float32)
  means = np.array([[100.0, 110.0], [20.0, 30.0], [40.0, 10.0]], np.float32)
  log_scales = np.array([[0.7, 1.0], [0.5, 0.0], [0.3, 0.8]], np.float32)
  coeffs_raw = np.array([[-3.0, 1.0], [-1.0, 2.0], [2.0, -2.0]], np.float32)
  head1 = _head(logits, means, log_scales, coeffs_raw)
  n = 60000
  x = np.asarray(_sample(jnp.broadcast_to(head1, (n, head1.shape[-1])), jax.random.key(4), RGB,
                         k, True)).astype(np.int64)
  vals = jnp.arange(256, dtype=jnp.float32)
  heads = jnp.broadcast_to(head1, (256, head1.shape[-1]))
  p_r = _coupled_conditional_pmf(head1[None], 0, jnp.zeros((1, 3)), k)[0]
  p_g_given_r = _coupled_conditional_pmf(
      heads, 1, jnp.stack([vals, vals * 0, vals * 0], -1), k)           # [R, G]
  p_rg = p_r[:, None] * p_g_given_r
  support = np.argwhere(p_rg > 1e-7)                                   # (r, g) pairs
  x_prev = jnp.asarray(np.stack([support[:, 0], support[:, 1], 0 * support[:, 0]], -1),
                       jnp.float32)
  p_b_given_rg = _coupled_conditional_pmf(
      jnp.broadcast_to(head1, (len(support), head1.shape[-1])), 2, x_prev, k)
  p_b = (p_rg[support[:, 0], support[:, 1], None] * p_b_given_rg).sum(0)
  for channel, pmf in ((0, p_r), (1, p_rg.sum(0)), (2, p_b)):
    counts = np.bincount(x[:, channel], minlength=256)
    stat, dof = _chi_square(counts, pmf / pmf.sum())
    assert stat < dof + 6 * np.sqrt(2 * dof), (channel, stat, dof)


def test_sample_mixture_rgb_in_range_and_integer(np_rng):
  n, k = 4096, 4
  head = jnp.asarray(np_rng.normal(0, 1, (n, 4 * 3 * k)) *
                     np.repeat([3.0, 200.0, 3.0, 3.0], 3 * k), jnp.float32)
  x = np.asarray(_sample(head, jax.random.key(5), RGB, k, True))
  assert x.shape == (n, 3) and x.dtype == np.float32
  assert x.min() >= 0 and x.max() <= 255
  np.testing.assert_array_equal(x, np.round(x))
  assert len(np.unique(x)) > 100


def test_sample_mixture_latents_on_levels_and_unsnapped_are_continuous(np_rng):
  n, c, k = 2048, 5, 3
  head = jnp.asarray(np_rng.normal(0, 1, (n, 3 * c * k)) * np.repeat([2.0, 1.0, 2.0], c * k),
                     jnp.float32)
  z = np.asarray(_sample(head, jax.random.key(6), LATENT, k, False, levels=LEVELS))
  assert z.shape == (n, c)
  assert np.isin(z, LEVELS).all()
  assert len(np.unique(z)) == 25
  z_default = np.asarray(_sample(head, jax.random.key(6), LATENT, k, False))
  np.testing.assert_allclose(z_default, z, atol=1e-6)   # x_min + l*b vs the exact centres
  z_cont = np.asarray(_sample(head, jax.random.key(6), LATENT, k, False, snap=False))
  assert z_cont.min() >= -1 and z_cont.max() <= 1
  assert not np.isin(z_cont, LEVELS).all()
  np.testing.assert_allclose(mixture_sampling.snap_to_levels(z_cont, LATENT, LEVELS), z)


def test_sample_mixture_rejects_bad_head_width():
  with pytest.raises(ValueError, match="multiple"):
    mixture_sampling.sample_mixture(jnp.zeros((2, 7)), jax.random.key(0), LATENT, 2, False)


# --- scale-wise sampling with a model ----------------------------------------------------------

SMALL = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2,
                  num_scales=2)


@pytest.fixture(scope="module")
def small_setup():
  params = random_params(SMALL)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  return SMALL, params, x


def test_sample_given_scale_keeps_real_latents_and_samples_the_rest(small_setup):
  cfg, params, x = small_setup
  from l3c_jax.models.l3c import L3C
  _, z_real = L3C(cfg).apply({"params": params}, x, method=L3C.encode)
  res = sampling.sample_given_scale(cfg, params, x, 2, jax.random.key(0))
  assert res.x.shape == x.shape
  assert float(res.x.min()) >= 0 and float(res.x.max()) <= 255
  np.testing.assert_array_equal(res.x, jnp.round(res.x))
  assert sorted(res.groups) == ["x", "z1", "z2"]
  np.testing.assert_array_equal(res.groups["z2"], z_real[1])            # given: real
  assert res.groups["z1"].shape == z_real[0].shape
  assert np.isin(np.asarray(res.groups["z1"]), LEVELS).all()           # sampled, on levels
  assert not np.array_equal(res.groups["z1"], z_real[0])
  res2 = sampling.sample_given_scale(cfg, params, x, 2, jax.random.key(1))
  assert not np.array_equal(res.x, res2.x)                              # the key matters


def test_sample_given_scale_unconditional_with_continuous_latents(small_setup):
  cfg, params, x = small_setup
  res = sampling.sample_given_scale(cfg, params, x, cfg.num_scales + 1, jax.random.key(0),
                                    snap_latents=False)
  top = np.asarray(res.groups["z2"])
  assert np.isin(top, LEVELS).all() and len(np.unique(top)) > 5   # uniform prior over levels
  z1 = np.asarray(res.groups["z1"])
  assert z1.min() >= -1 and z1.max() <= 1 and not np.isin(z1, LEVELS).all()  # not snapped
  assert float(res.x.min()) >= 0 and float(res.x.max()) <= 255
  np.testing.assert_array_equal(res.x, jnp.round(res.x))
  with pytest.raises(ValueError, match="given_scale"):
    sampling.sample_given_scale(cfg, params, x, 0, jax.random.key(0))


# The interlaced pyramid (the shipped model's family, phase 0 given by the coarser image) and the
# phased bicubic pyramid; slow: each compiles its network (~15-20 s here).
@pytest.mark.parametrize("subsample", [False, True])
@pytest.mark.slow
def test_sample_given_scale_pyramid_phases(subsample):
  cls = RGBInterlacedConfig if subsample else RGBBicubicPhasedConfig
  cfg = cls(num_channels=4, num_res_blocks=1, num_mixtures=2, num_scales=2)
  params = random_params(cfg)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  from l3c_jax.models import pyramid
  z_real = pyramid.RGBPyramid(cfg).apply({"params": params}, x, method="encode")
  res = sampling.sample_given_scale(cfg, params, x, 2, jax.random.key(0))
  assert sorted(res.groups) == ["x", "x1", "x2"]
  np.testing.assert_array_equal(res.groups["x2"], z_real[1])            # x^(2) given
  for img in (res.x, res.groups["x1"]):                                 # sampled images
    assert float(img.min()) >= 0 and float(img.max()) <= 255
    np.testing.assert_array_equal(img, jnp.round(img))
  assert not np.array_equal(res.groups["x1"], z_real[0])
  if subsample:  # phase 0 of each sampled image is the coarser image
    np.testing.assert_array_equal(res.groups["x1"][:, ::2, ::2], res.groups["x2"])
    np.testing.assert_array_equal(res.x[:, ::2, ::2], res.groups["x1"])
  top = sampling.sample_given_scale(cfg, params, x, 3, jax.random.key(0)).groups["x2"]
  assert len(np.unique(np.asarray(top))) > 5 and float(top.max()) <= 255


def test_bpsp_kept_sums_the_stored_scales(small_setup):
  cfg, params, x = small_setup
  kept = sampling.bpsp_kept(cfg, params, x)
  # losses.model_bits (tested in its own module), compiled once above.
  bits = losses.model_bits(cfg, params, x)
  n = 3 * 16 * 16
  np.testing.assert_allclose(kept[2], cfg.latent_channels * np.log2(25) / (3 * 16), rtol=1e-6)
  np.testing.assert_allclose(kept[1], (float(bits["z1"]) + float(bits["z2"])) / n, rtol=1e-5)
  np.testing.assert_allclose(kept[0], sum(float(v) for v in bits.values()) / n, rtol=1e-5)
  assert kept[3] == 0.0


def spy_on(monkeypatch, module, name):
  """Replaces module.name by a wrapper that records each call's arguments and result."""
  calls = []
  real = getattr(module, name)

  def wrapper(*args, **kwargs):
    calls.append((args, kwargs, real(*args, **kwargs)))
    return calls[-1][2]

  monkeypatch.setattr(module, name, wrapper)
  return calls


def write_small_model_and_image(tmp_path):
  model_dir = model_io.save_model(str(tmp_path / "model"), SMALL, random_params(SMALL))
  pixels = np.random.default_rng(1).integers(0, 256, (20, 27, 3), dtype=np.uint8)
  image = str(tmp_path / "img.png")
  Image.fromarray(pixels).save(image)
  return model_dir, image, pixels[2:18, 5:21]   # centre 16x16 crop (multiple of 2^S = 4)


def run_script(name, model_dir, image, out, *extra_flags):
  """Runs experiments/<name>.py's main() on a 16x16 crop; asserts exit status 0."""
  assert launchers.run_main(name, f"--model={model_dir}", f"--image={image}", "--crop=16",
                            f"--output={out}", *extra_flags) == 0


@pytest.mark.slow
def test_sample_script_writes_grid(tmp_path, capsys, monkeypatch):
  model_dir, image, crop = write_small_model_and_image(tmp_path)
  out = str(tmp_path / "grid.png")
  calls = spy_on(monkeypatch, figures, "image_grid")
  run_script("sample", model_dir, image, out, "--num_samples=2", "--seed=3")
  text = capsys.readouterr().out
  assert "given z2: stored z2 = " in text and "given z1: stored z1+z2 = " in text
  (cells, path), kwargs, chart = calls[0]
  # real + 2 levels = 3 columns, 2 rows of samples; the real crop only in the first row
  assert [len(r) for r in cells] == [3, 3] and cells[1][0] is None
  np.testing.assert_array_equal(cells[0][0], crop)
  assert all(c.shape == (16, 16, 3) and c.dtype == np.uint8 for r in cells for c in r[1:])
  assert kwargs["row_titles"] == ["sample 1", "sample 2"] and len(chart.labels) == 3
  with Image.open(path) as im:
    assert path == out and im.format == "PNG"
