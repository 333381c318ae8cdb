"""Optional pixel-head settings of short CPU runs: output scaling, init and residual means."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import losses
from l3c_jax.likelihood import dmll
from l3c_jax.models import L3C, L3CConfig
from l3c_jax.models import families
from l3c_jax.models.pyramid import (RGBBicubicConfig, RGBBicubicPhasedConfig,
                                    RGBInterlacedConfig, RGBPyramid)
from l3c_jax.train import step as step_lib

from conftest import random_params


def _params(cfg, seed: int):
  """Random parameters as jax arrays, without compiling `init_params` (seconds per config)."""
  return jax.tree_util.tree_map(jnp.asarray, random_params(cfg, seed=seed))

CFG = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)


def test_pixel_mean_scale_multiplies_only_rgb_mean_channels():
  p = _params(CFG, 0)
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
  p = step_lib.init_pixel_head(_params(cfg, 0), cfg)
  x = jnp.zeros((1, 16, 16, 3), jnp.float32)
  head = np.asarray(L3C(cfg).apply({"params": p}, x).head_params[0])
  ck = 3 * cfg.num_mixtures
  # Means = 127.5 * (bias 1 + small random part); log-scales near log 16.
  assert abs(np.median(head[..., ck:2 * ck]) - 127.5) < 40
  assert abs(np.median(head[..., 2 * ck:3 * ck]) - np.log(16.0)) < 1.0


RES = RGBBicubicConfig(num_channels=4, num_res_blocks=1, num_mixtures=2, residual_means=True)
SIZES = dict(num_channels=4, num_res_blocks=1, num_mixtures=2)


def _zero_head_outputs(params, cfg):
  """Head outputs 0: offsets 0, log-scales 0, coupling coefficients sigmoid(0) = 1/2."""
  p = jax.tree_util.tree_map(lambda a: a, params)
  for s in range(cfg.num_scales):
    conv = p[f"prob_heads_{s}"]["out"]["conv"]
    conv["kernel"] = jnp.zeros_like(conv["kernel"])
    conv["bias"] = jnp.zeros_like(conv["bias"])
  return p


@pytest.mark.slow
def test_pixel_mean_residual_predicts_the_upsampled_coarser_image_with_residual_coupling():
  p = _zero_head_outputs(_params(RES, 0), RES)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  heads = RGBPyramid(RES).apply({"params": p}, x)
  pyramid = (x,) + RGBPyramid(RES).apply({"params": p}, x, method="encode")
  k = RES.num_mixtures
  for s in range(RES.num_scales):          # head s+1 predicts x^(s) from x^(s+1)
    coarse = np.asarray(pyramid[s + 1])[0]
    up = coarse.repeat(2, 0).repeat(2, 1)
    target = np.asarray(pyramid[s][0])
    mp = dmll.split_params(heads["x" if s == 0 else f"x{s}"], 3, k, coupled=True)
    means = np.asarray(dmll.coupled_means(mp, jnp.asarray(target)[None]))[0]  # [h, w, 3, K]
    d = target - up
    expected = np.stack([up[..., 0], up[..., 1] + 0.5 * d[..., 0],
                         up[..., 2] + 0.5 * (d[..., 0] + d[..., 1])], -1)
    np.testing.assert_allclose(means, np.repeat(expected[..., None], k, -1), atol=1e-3)


def test_pixel_head_init_sets_every_rgb_head_of_the_baselines():
  cfg = RES.replace(residual_means=False, pixel_mean_scale=127.5)
  p = step_lib.init_pixel_head(_params(cfg, 0), cfg)
  ck = 3 * cfg.num_mixtures
  for s in range(cfg.num_scales):
    bias = np.asarray(p[f"prob_heads_{s}"]["out"]["conv"]["bias"])
    np.testing.assert_allclose(bias[ck:2 * ck], 1.0)            # 127.5 / 127.5
    np.testing.assert_allclose(bias[2 * ck:3 * ck], np.log(16.0), rtol=1e-6)
  res = step_lib.init_pixel_head(_params(RES, 0), RES)
  np.testing.assert_array_equal(np.asarray(res["prob_heads_2"]["out"]["conv"]["bias"])[ck:2 * ck],
                                0.0)


def test_interlaced_pyramid_codes_phases_one_to_three_only():
  cfg = RGBInterlacedConfig(**SIZES)
  p = _params(cfg, 0)
  x = jnp.asarray(np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  pyramid = RGBPyramid(cfg).apply({"params": p}, x, method="encode")
  np.testing.assert_array_equal(np.asarray(pyramid[0]), np.asarray(x[:, ::2, ::2]))
  np.testing.assert_array_equal(np.asarray(pyramid[2]), np.asarray(x[:, ::8, ::8]))
  steps = families.plan(cfg)
  assert [s.name for s in steps] == ["x3", "x2.p1", "x2.p2", "x2.p3", "x1.p1", "x1.p2",
                                     "x1.p3", "x.p1", "x.p2", "x.p3"]
  maps = losses.bit_maps(cfg, p, x)
  for group, shape in (("x", (16, 16)), ("x1", (8, 8)), ("x2", (4, 4))):
    bits = np.asarray(maps[group])[0]
    assert bits.shape == shape
    assert np.all(bits[::2, ::2] == 0)                                  # phase 0: known, free
    assert bits[1::2, 1::2].mean() > 1.0                                # phases 1-3: coded
  names = [name for name, _ in families.get(cfg).head_names(cfg)]
  assert not any(name.endswith(("_0", "_4", "_8")) for name in names)
  assert set(names) == {k for k in p if k.startswith("phase_heads_")}


def test_merge_params_takes_matching_leaves_only():
  src = _params(RGBBicubicPhasedConfig(**SIZES), 1)
  dst = _params(RGBInterlacedConfig(**SIZES), 2)
  merged, taken = step_lib.merge_params(dst, src)
  assert taken == len(jax.tree_util.tree_leaves(dst))                  # a subset of src's heads
  np.testing.assert_array_equal(np.asarray(merged["decoders_0"]["head"]["conv"]["kernel"]),
                                np.asarray(src["decoders_0"]["head"]["conv"]["kernel"]))
  other = _params(RGBBicubicPhasedConfig(**{**SIZES, "num_channels": 6}), 3)  # other shapes
  kept, taken = step_lib.merge_params(other, src)
  assert taken < len(jax.tree_util.tree_leaves(other))
  np.testing.assert_array_equal(np.asarray(kept["decoders_0"]["head"]["conv"]["kernel"]),
                                np.asarray(other["decoders_0"]["head"]["conv"]["kernel"]))
