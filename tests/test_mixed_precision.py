"""Mixed precision (`--train.compute_dtype`): bfloat16 convs, float32 everything else.

Off (float32, the default) must be the float32 path as it was; on, the convs of encoders,
decoders and heads compute in bfloat16 while parameters, gradients, optimizer state, the
mixture parameters, the likelihood and the loss stay float32.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from l3c_jax.models import L3CConfig, RGBInterlacedConfig
from l3c_jax.models import families
from l3c_jax.train import config as config_lib
from l3c_jax.train import step as step_lib
from l3c_jax.train.config import ExperimentConfig, TrainConfig

from conftest import write_images

TINY = L3CConfig(num_channels=8, num_res_blocks=1, latent_channels=2, num_mixtures=2)
TINY_PYRAMID = RGBInterlacedConfig(num_channels=8, num_res_blocks=1, num_mixtures=2)
# The default suite checks the L3C family; the pyramid family (the same conv layers and dtype
# policy, another network: ~15-50 s more per test here, mostly initializing and compiling its
# step) runs with `-m slow`.
CONFIG_PARAMS = [TINY, TINY_PYRAMID]


def _batch(seed=0, b=2, size=16):
  rng = np.random.default_rng(seed)
  base = rng.integers(60, 200, (b, 1, 1, 3))
  noise = rng.integers(-8, 9, (b, size, size, 3))
  return jnp.asarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _state(cfg):
  tx = step_lib.make_optimizer(TrainConfig(learning_rate=1e-3), 100)
  return tx, step_lib.create_train_state(cfg, tx, jax.random.key(0))


def _step_jaxpr(cfg, **kw) -> str:
  tx, state = _state(cfg)
  return str(jax.make_jaxpr(lambda s, x: step_lib.train_step(s, x, cfg, tx, **kw))(
      state, _batch()))


@pytest.mark.parametrize("cfg", CONFIG_PARAMS, ids=lambda c: c.family)
@pytest.mark.slow
def test_float32_compute_is_the_float32_path_as_before(cfg):
  """compute_dtype float32 (the default) traces to the very program of a step that is not given
  a dtype at all (the code path before the option existed), with no bfloat16 anywhere.

  (Checked once by hand against the main branch before the option: the compiled HLO of the
  default step was identical up to source-line metadata, and state and metrics after a step
  bit-identical, for both families here.)
  """
  assert TrainConfig().compute_dtype == "float32"
  plain = _step_jaxpr(cfg)
  assert "bf16" not in plain
  assert _step_jaxpr(cfg, dtype=TrainConfig().compute_dtype) == plain


@pytest.mark.parametrize("cfg", CONFIG_PARAMS, ids=lambda c: c.family)
@pytest.mark.slow
def test_bfloat16_step_computes_convs_in_bf16_and_keeps_float32_state(cfg):
  tx, state = _state(cfg)
  x = _batch()
  jaxpr = _step_jaxpr(cfg, dtype="bfloat16")
  bf16_convs = re.findall(r"bf16\[[^\]]*\] = conv_general_dilated", jaxpr)
  f32_convs = re.findall(r"f32\[[^\]]*\] = conv_general_dilated", jaxpr)
  assert bf16_convs, "no conv computes in bfloat16"
  # float32 convs left: the heads' last 1x1 convs and their input gradients only.
  assert len(f32_convs) < len(bf16_convs) / 2, (len(f32_convs), len(bf16_convs))

  grad = jax.jit(jax.value_and_grad(step_lib.loss_fn, has_aux=True), static_argnums=(2, 5))
  (loss32, _), g32 = grad(state.params, x, cfg, None, None, None)
  (loss16, m16), g16 = grad(state.params, x, cfg, None, None, "bfloat16")
  # The loss is float32 and close: bfloat16 rounds each conv output to 8 mantissa bits
  # (relative 2^-9 = 2e-3); the loss is a mean over thousands of symbols' bits, so the
  # roundings largely average out (measured 3e-7 to 2e-4 on these and 32^2-64^2 configs, during
  # 20 steps of training). rtol 2e-3, one bfloat16 rounding unit, leaves a 10x margin.
  assert loss16.dtype == jnp.float32 and all(v.dtype == jnp.float32 for v in m16.values())
  np.testing.assert_allclose(float(loss16), float(loss32), rtol=2e-3)
  # Gradients: float32 leaves of the parameters' dtypes, finite, same direction (cosine 0.994
  # and 0.99995 measured here at init, >= 0.9999 after some steps of training).
  assert jax.tree.map(lambda a: a.dtype, g16) == jax.tree.map(lambda a: a.dtype, state.params)
  a = np.concatenate([np.ravel(v) for v in jax.tree.leaves(g32)])
  b = np.concatenate([np.ravel(v) for v in jax.tree.leaves(g16)])
  assert np.all(np.isfinite(b))
  assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.98

  dtypes = lambda tree: jax.tree.map(lambda v: v.dtype, tree)
  before = dtypes(state)
  f = jax.jit(lambda s, v: step_lib.train_step(s, v, cfg, tx, dtype="bfloat16"))
  new, metrics = f(state, x)
  assert dtypes(new) == before  # params and optimizer state float32 (step count int32)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(new.params))
  assert float(metrics["nonfinite"]) == 0.0
  assert not all(np.array_equal(p, q) for p, q in
                 zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)))


@pytest.mark.slow
def test_bfloat16_heads_give_float32_mixture_parameters_and_the_codec_stays_float32():
  params = families.init_params(TINY, jax.random.key(0))
  x = jnp.asarray(_batch(), jnp.float32)
  out32 = families.module(TINY).apply({"params": params}, x)
  out16 = families.module(TINY, jnp.bfloat16).apply({"params": params}, x)
  for h32, h16 in zip(out32.head_params, out16.head_params):
    assert h32.dtype == h16.dtype == jnp.float32
  assert all(z.dtype == jnp.float32 for z in out16.z)  # the quantizer computes in float32
  # The codec's (jitted) runner has no compute dtype: it is float32 (or exact) only.
  with pytest.raises(ValueError, match="float32"):
    families.runner(TINY, params, jit=True, dtype=jnp.bfloat16)
  assert families.runner(TINY, params, jit=True).module.dtype is None


def test_compute_dtype_flag_and_config():
  fv = flags.FlagValues()
  config_lib.define_flags(fv)
  fv(["prog", "--train.compute_dtype=bfloat16"])
  cfg = config_lib.from_flags(fv)
  assert cfg.train.compute_dtype == "bfloat16"
  assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
  # A run directory's config.json from before the option: float32.
  old = cfg.to_dict()
  del old["train"]["compute_dtype"]
  assert ExperimentConfig.from_dict(old).train.compute_dtype == "float32"
  with pytest.raises(ValueError, match="compute_dtype"):
    TrainConfig(compute_dtype="float16")


@pytest.mark.slow  # 27 s in CI (a loop run compiles)
def test_the_training_loop_trains_in_the_configured_dtype(tmp_path, monkeypatch):
  """--train.compute_dtype reaches the loop's step (which then trains)."""
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  data = write_images(tmp_path / "data", n=2, height=24, width=24)
  seen = []
  real = step_lib.train_step

  def recording(*args, **kwargs):
    seen.append(kwargs.get("dtype"))
    return real(*args, **kwargs)

  monkeypatch.setattr(step_lib, "train_step", recording)
  tcfg = TrainConfig(crop_size=16, batch_size=2, num_steps=1, log_every=1, num_workers=0,
                     learning_rate=1e-3, compute_dtype="bfloat16")
  out = loop.train_and_evaluate(ExperimentConfig(model=TINY, train=tcfg), str(tmp_path / "w"),
                                str(data), None)
  assert out["step"] == 1
  assert seen == ["bfloat16"]
