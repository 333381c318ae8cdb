"""Optional pixel-head settings of short CPU runs: output scaling of the means and their init."""

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax.models import L3C, L3CConfig, init_params
from l3c_jax.train import step as step_lib

CFG = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)


def test_pixel_mean_scale_multiplies_only_rgb_mean_channels():
  p = init_params(CFG, jax.random.key(0))
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  a = L3C(CFG).apply({"params": p}, x)
  b = L3C(CFG.replace(pixel_mean_scale=10.0)).apply({"params": p}, x)
  ck = 3 * CFG.num_mixtures
  h0a, h0b = np.asarray(a.head_params[0]), np.asarray(b.head_params[0])
  np.testing.assert_allclose(h0b[..., ck:2 * ck], 10.0 * h0a[..., ck:2 * ck], rtol=1e-6)
  np.testing.assert_array_equal(h0b[..., :ck], h0a[..., :ck])
  np.testing.assert_array_equal(h0b[..., 2 * ck:], h0a[..., 2 * ck:])
  np.testing.assert_array_equal(np.asarray(b.head_params[1]), np.asarray(a.head_params[1]))


def test_pixel_head_init_starts_means_at_mid_grey():
  cfg = CFG.replace(pixel_mean_scale=127.5)
  p = step_lib.init_pixel_head(init_params(cfg, jax.random.key(0)), cfg)
  x = jnp.zeros((1, 16, 16, 3), jnp.float32)
  head = np.asarray(L3C(cfg).apply({"params": p}, x).head_params[0])
  ck = 3 * cfg.num_mixtures
  # Means = 127.5 * (bias 1 + small random part); log-scales near log 16.
  assert abs(np.median(head[..., ck:2 * ck]) - 127.5) < 40
  assert abs(np.median(head[..., 2 * ck:3 * ck]) - np.log(16.0)) < 1.0
