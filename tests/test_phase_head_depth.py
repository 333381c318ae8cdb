"""Deeper phase heads (`head_res_blocks`): a warm start from heads without them starts from the
same function, the option leaves existing models' fingerprints alone, and the exact form codes
such a model losslessly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import losses
from l3c_jax import model_io
from l3c_jax.coding import codec
from l3c_jax.data import images
from l3c_jax.models import families
from l3c_jax.models.pyramid import RGBBicubicConfig, RGBInterlacedConfig
from l3c_jax.train import step as step_lib

from conftest import random_params

BASE = RGBInterlacedConfig(num_scales=2, num_channels=8, num_res_blocks=1, num_mixtures=2)


@pytest.mark.slow
def test_warm_start_into_deeper_heads_keeps_every_bit_and_the_new_blocks_train():
  deep = BASE.replace(head_res_blocks=2)
  source = random_params(BASE, seed=0)
  params, taken = step_lib.merge_params(families.init_params(deep, jax.random.key(1)), source)
  assert taken == len(jax.tree_util.tree_leaves(source))
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3)), jnp.float32)
  a = losses.bits_per_group(BASE, source, x)
  b = losses.bits_per_group(deep, params, x)
  for k in a:
    np.testing.assert_allclose(float(b[k]), float(a[k]), rtol=1e-6, err_msg=k)
  # The new blocks are not dead: the loss has a gradient at their final (zero) conv.
  grads = jax.grad(lambda p: sum(losses.bits_per_group(deep, p, x).values()))(params)
  final = grads["phase_heads_1"]["body"]["final"]["conv"]["kernel"]
  assert float(jnp.abs(final).max()) > 0


def test_head_res_blocks_zero_keeps_the_fingerprint_and_bad_values_are_refused():
  params = random_params(BASE, seed=0)
  assert (model_io.compute_fingerprint(BASE, params)
          == model_io.compute_fingerprint(BASE.replace(head_res_blocks=0), params))
  assert "head_res_blocks" in families.get(BASE).network_spec(BASE.replace(head_res_blocks=1))
  for bad in (lambda: BASE.replace(head_res_blocks=-1),
              lambda: RGBBicubicConfig(head_res_blocks=1)):  # no phase heads to deepen
    with pytest.raises(ValueError):
      bad()


@pytest.mark.slow  # compiles the codec for its own config; the exact convs are the shared ones
def test_deeper_heads_code_exactly():
  model = model_io.random_model(BASE.replace(head_res_blocks=1, exact=True), seed=3)
  pixels = np.random.default_rng(1).integers(0, 256, (13, 21, 3)).astype(np.uint8)
  data, _ = codec.encode(images.ImageData(pixels=pixels, mode="RGB"), model,
                             method="model")
  out, _ = codec.decode(data, model)
  np.testing.assert_array_equal(out.pixels, pixels)
