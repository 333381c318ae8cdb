"""Tests of the L3C network (l3c_jax/models): sizes, shapes, pixel shuffle, decoder determinism."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import losses
from l3c_jax.models import config as config_lib
from l3c_jax.models import families
from l3c_jax.models import layers
from l3c_jax.models import quantizer
from l3c_jax.models.families import count_params, init_params, param_shapes
from l3c_jax.models.l3c import L3C, head_channels

H, W = 16, 24


def _num_elements(tree) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


@pytest.fixture(scope="module")
def tiny_setup(tiny_config, tiny_params):
  """(config, params, x [1, 16, 24, 3] float32 pixels) of the tiny model, built once."""
  params = tiny_params
  x = np.random.default_rng(0).integers(0, 256, size=(1, H, W, 3)).astype(np.float32)
  return tiny_config, params, x


@pytest.fixture(scope="module")
def tiny_forward(tiny_setup):
  cfg, params, x = tiny_setup
  model = L3C(cfg)
  return jax.jit(lambda p, v: model.apply({"params": p}, v))(params, x)


def test_paper_config_has_5008395_parameters():
  shapes = param_shapes(config_lib.PAPER)   # jax.eval_shape: no compilation, no allocation
  assert _num_elements(shapes) == 5_008_395
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(shapes))


def test_reference_tiny_config_has_official_trainable_parameter_count():
  # expected.json of the fixture: 163,803 trainable (the 3 x 25 fixed levels are not parameters).
  assert _num_elements(param_shapes(config_lib.REFERENCE_TINY)) == 163_803


def test_count_params_counts_every_leaf(tiny_setup):
  _, params, _ = tiny_setup
  assert count_params(params) == _num_elements(params) > 0


@pytest.mark.slow  # 3-10 s: eager init dispatches and compiles every op of the forward pass
def test_init_params_matches_param_shapes(tiny_config):
  # Real init on the smallest valid image (8x8); compare with the eval_shape structure.
  params = init_params(tiny_config, jax.random.key(0), image_size=8)
  shapes = param_shapes(tiny_config)
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(shapes)
  for p, s in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(shapes)):
    assert p.shape == s.shape and p.dtype == s.dtype
    assert np.all(np.isfinite(p))


def test_paper_model_output_shapes_without_compiling():
  cfg = config_lib.PAPER
  x = jax.ShapeDtypeStruct((2, 64, 96, 3), jnp.float32)
  out = jax.eval_shape(lambda p, v: L3C(cfg).apply({"params": p}, v), param_shapes(cfg), x)
  for s in range(1, 4):
    assert out.symbols[s - 1].shape == (2, 64 >> s, 96 >> s, 5)
    assert out.head_params[s - 1].shape == (2, 64 >> (s - 1), 96 >> (s - 1), (120, 150, 150)[s - 1])


def test_tiny_model_per_scale_output_shapes(tiny_setup, tiny_forward):
  cfg, _, _ = tiny_setup
  out = tiny_forward
  assert len(out.symbols) == len(out.z) == len(out.head_params) == cfg.num_scales == 3
  k, c_q = cfg.num_mixtures, cfg.latent_channels
  for s in range(1, cfg.num_scales + 1):
    h, w = H >> s, W >> s
    assert out.symbols[s - 1].shape == (1, h, w, c_q) and out.symbols[s - 1].dtype == jnp.int32
    assert out.z[s - 1].shape == (1, h, w, c_q) and out.z[s - 1].dtype == jnp.float32
    kp = 4 * 3 * k if s == 1 else 3 * c_q * k
    assert head_channels(cfg, s) == kp
    assert out.head_params[s - 1].shape == (1, h * 2, w * 2, kp)
    assert out.head_params[s - 1].dtype == jnp.float32
    sym = np.asarray(out.symbols[s - 1])
    assert sym.min() >= 0 and sym.max() < cfg.num_levels


def test_eval_forward_z_is_exactly_the_levels_of_the_symbols(tiny_setup, tiny_forward):
  cfg, _, _ = tiny_setup
  levels = quantizer.quantization_levels(cfg.num_levels, cfg.levels_min, cfg.levels_max)
  for s in range(cfg.num_scales):
    np.testing.assert_array_equal(tiny_forward.z[s], levels[np.asarray(tiny_forward.symbols[s])])


def _pixel_shuffle_oracle(x: np.ndarray, r: int) -> np.ndarray:
  """PyTorch PixelShuffle written out: out[n, c, r*h + i, r*w + j] = in[n, c*r*r + i*r + j, h, w].

  Here in NHWC: out[n, r*h + i, r*w + j, c] = in[n, h, w, c*r*r + i*r + j].
  """
  n, h, w, crr = x.shape
  c = crr // (r * r)
  out = np.empty((n, h * r, w * r, c), x.dtype)
  for hh in range(h):
    for ww in range(w):
      for cc in range(c):
        for i in range(r):
          for j in range(r):
            out[:, r * hh + i, r * ww + j, cc] = x[:, hh, ww, cc * r * r + i * r + j]
  return out


@pytest.mark.parametrize("factor", [2, 3])
def test_pixel_shuffle_matches_pytorch_channel_order(factor):
  x = np.arange(2 * 3 * 4 * 5 * factor * factor, dtype=np.float32).reshape(
      2, 3, 4, 5 * factor * factor)
  got = np.asarray(layers.pixel_shuffle(jnp.asarray(x), factor))
  np.testing.assert_array_equal(got, _pixel_shuffle_oracle(x, factor))


def test_pixel_shuffle_is_not_tf_depth_to_space():
  # TF's depth_to_space puts the channel innermost; make sure we are not accidentally that.
  x = np.arange(1 * 1 * 1 * 8, dtype=np.float32).reshape(1, 1, 1, 8)
  got = np.asarray(layers.pixel_shuffle(jnp.asarray(x), 2))
  np.testing.assert_array_equal(got[0, :, :, 0], [[0, 1], [2, 3]])
  np.testing.assert_array_equal(got[0, :, :, 1], [[4, 5], [6, 7]])


def test_decode_scale_path_gives_bit_identical_heads(tiny_setup, tiny_forward):
  """A decoder that only knows the symbols recomputes exactly the encoder's head outputs.

  The codec's determinism requirement: head s must be bit-identical whether computed inside the
  full jitted forward (encoder side) or by separately jitted per-scale `decode_scale` calls fed
  with z rebuilt from the symbols (decoder side).
  """
  cfg, params, _ = tiny_setup
  model = L3C(cfg)
  levels = quantizer.quantization_levels(cfg.num_levels, cfg.levels_min, cfg.levels_max)

  def decode(s, p, z_s, f_above):
    return model.apply({"params": p}, s, z_s, f_above, method=L3C.decode_scale)

  f = None  # f^(S+1) does not exist; jit passes None through as an empty pytree
  for s in range(cfg.num_scales, 0, -1):
    z_s = quantizer.from_symbols(jnp.asarray(np.asarray(tiny_forward.symbols[s - 1])), levels)
    f, head = jax.jit(functools.partial(decode, s))(params, z_s, f)
    assert np.array_equal(np.asarray(head), np.asarray(tiny_forward.head_params[s - 1])), (
        f"head {s}: max abs diff "
        f"{np.max(np.abs(np.asarray(head) - np.asarray(tiny_forward.head_params[s - 1])))}")


def test_encode_matches_forward_symbols(tiny_setup, tiny_forward):
  cfg, params, x = tiny_setup
  symbols, _ = jax.jit(lambda p, v: L3C(cfg).apply({"params": p}, v, method=L3C.encode))(params, x)
  for s in range(cfg.num_scales):
    np.testing.assert_array_equal(symbols[s], tiny_forward.symbols[s])


def test_plan_loss_equals_the_official_forward_pass_bit_for_bit(tiny_setup):
  """The loss iterates the coding plan (z^(S) uniform, then z^(S-1), ..., z^(1), x, each head on
  the decoders above it); it must be the very computation of L3C's one-pass forward, so that
  training curves do not depend on how the loop is written."""
  cfg, params, x = tiny_setup

  @jax.jit
  def both(p):
    out = L3C(cfg).apply({"params": p}, x, train=True)
    steps = families.plan(cfg)
    forward = {"x": jnp.sum(losses.step_bits(cfg, steps[-1], out.head_params[0], x))}
    for s in range(1, cfg.num_scales):
      forward[f"z{s}"] = jnp.sum(losses.step_bits(cfg, steps[-1 - s], out.head_params[s],
                                                   out.z[s - 1]))
    return forward, losses.bits_per_group(cfg, p, x, train=True)

  forward, planned = jax.device_get(both(params))
  assert [s.name for s in families.plan(cfg)] == ["z3", "z2", "z1", "x"]
  assert list(planned) == ["x", "z1", "z2", "z3"]
  for k, v in forward.items():
    assert v == planned[k], k


def test_tiny_model_loss_and_gradients_are_finite(tiny_setup):
  cfg, params, x = tiny_setup

  def loss_fn(p):
    return losses.bpsp_metrics(cfg, p, x, train=True)

  (loss, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  assert np.isfinite(loss) and float(loss) > 0
  for k, v in metrics.items():
    assert np.isfinite(v), k
  np.testing.assert_allclose(
      metrics["bpsp"], loss + math.log2(cfg.num_levels) * cfg.latent_channels / 3 / 64, rtol=1e-5)
  flat = jax.tree_util.tree_leaves_with_path(grads)
  assert all(np.all(np.isfinite(g)) for _, g in flat)
  # The straight-through estimator carries the rate gradient into every encoder.
  for s in range(cfg.num_scales):
    enc = grads[f"encoders_{s}"]
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(enc)), s
