"""The learned RGB baselines: parameter counts, pyramid, recursive RGB-Shared bits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import baselines, losses
from l3c_jax.models import RGBBicubicConfig, param_shapes
from l3c_jax.models import families
from l3c_jax.models.blocks import bicubic_half

from conftest import random_params


def _count(cfg):
  return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(param_shapes(cfg)))


def test_rgb_baseline_parameter_counts_match_official():
  rgb = RGBBicubicConfig()
  assert _count(rgb) == 2_729_076          # docs/l3c_reference.md#model-sizes
  assert _count(rgb.replace(num_scales=1)) == 909_700


def test_bicubic_half_keeps_constant_images_and_integers():
  x = jnp.full((1, 16, 8, 3), 77.0)
  np.testing.assert_array_equal(np.asarray(bicubic_half(x)), np.full((1, 8, 4, 3), 77.0))
  y = bicubic_half(jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)),
                               jnp.float32))
  assert np.all(np.asarray(y) == np.round(np.asarray(y))) and float(y.min()) >= 0


def test_rgb_baseline_every_scale_is_an_rgb_image():
  cfg = RGBBicubicConfig(num_channels=4, num_res_blocks=1, num_mixtures=2)
  p = random_params(cfg, seed=0)
  x = jnp.asarray(np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
  family = families.get(cfg)
  run = families.runner(cfg, p)
  targets = family.targets(cfg, run, x)
  assert [targets[g][1].shape for g in ("x1", "x2", "x3")] == [(1, 8, 8, 3), (1, 4, 4, 3),
                                                               (1, 2, 2, 3)]
  heads = families.module(cfg).apply({"params": p}, x)
  assert sorted(heads) == ["x", "x1", "x2"]
  assert all(h.shape[-1] == 4 * 3 * 2 for h in heads.values())
  bits = losses.model_bits(cfg, p, x)
  assert list(bits) == ["x", "x1", "x2", "x3"]
  assert float(bits["x3"]) == pytest.approx(2 * 2 * 3 * 8)   # top image stored with 8 bits


def test_rgb_shared_recursive_bits_sum_levels():
  cfg = RGBBicubicConfig(num_scales=1, num_channels=4, num_res_blocks=1, num_mixtures=2)
  p = random_params(cfg, seed=0)
  x = jnp.asarray(np.random.default_rng(2).integers(0, 256, (1, 32, 16, 3)), jnp.float32)
  # Jitted as a caller would (eager dispatch of four levels takes seconds).
  bits = jax.jit(baselines.rgb_shared_recursive_bits, static_argnums=(1, 3))(p, cfg, x, 4)
  assert sorted(bits) == ["x0", "x1", "x2", "x3", "x4"]
  assert float(bits["x4"]) == 2 * 1 * 3 * 8
  # Level 0 equals one plain application of the S=1 model.
  np.testing.assert_allclose(float(bits["x0"]), float(losses.model_bits(cfg, p, x)["x"]),
                             rtol=1e-6)
  with pytest.raises(ValueError):
    baselines.rgb_shared_recursive_bits(p, cfg.replace(num_scales=3), x)
