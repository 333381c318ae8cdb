"""Sampling an image given its real representation down to some scale (paper Sec. 5.4).

`sample_given_scale(config, params, x, s, key)` iterates the family's coding plan: the steps of
scale >= s keep the real symbols of x (what would still be stored), every other step draws its
symbols from its head given the steps before it (real or sampled), exactly where the decoder
would read them. s = S + 1 samples everything, the top step from its uniform prior. For L3C the
steps are the latents z^(S-1..1) and the pixels; for the RGB pyramids the images x^(s-1), phase by
phase for the phased families.
Pure JAX (no I/O); the sampling math is in `l3c_jax.likelihood.sampling`.
"""

import dataclasses
import functools
from typing import Dict

import jax

from l3c_jax import losses
from l3c_jax.likelihood import sampling as mixture_sampling
from l3c_jax.models import families
from l3c_jax.models import plan as plan_lib
from l3c_jax.models.l3c import latent_levels


@dataclasses.dataclass(frozen=True)
class SampleResult:
  """One sampling pass.

  Attributes:
    x: [B, H, W, 3] float32 sampled pixels (integers 0..255).
    groups: {group name: values [B, h, w, C]} of every coded array on its grid (e.g. 'z2' or
      'x2'), real for scales >= the given scale, sampled below it.
  """
  x: jax.Array
  groups: Dict[str, jax.Array]


jax.tree_util.register_dataclass(SampleResult, data_fields=["x", "groups"], meta_fields=[])


def _draw(config, step: plan_lib.Step, head, key, snap_latents: bool):
  """Symbol values of a HEAD step drawn from its mixture."""
  alphabet, coupled = losses.step_alphabet(config, step)
  if coupled:  # pixels
    return mixture_sampling.sample_mixture(head, key, alphabet, config.num_mixtures, True,
                                           config.log_scale_min)
  return mixture_sampling.sample_mixture(head, key, alphabet, config.num_mixtures, False,
                                         config.log_scale_min, snap=snap_latents,
                                         levels=latent_levels(config))


@functools.partial(jax.jit, static_argnames=("config", "given_scale", "snap_latents"))
def sample_given_scale(config, params, x: jax.Array, given_scale: int, key: jax.Array,
                       snap_latents: bool = True) -> SampleResult:
  """Samples the steps below `given_scale` from the model, keeping the real ones above.

  NOTE(l3c-pytorch): the reference feeds sampled latents to the next decoder as continuous
  values; by default we snap them to the nearest quantizer level, because our decoders only ever
  see levels (in training and coding). `snap_latents=False` reproduces the reference behaviour.
  The pixels are always clamped to [0, 255] and rounded.

  Args:
    config: model configuration (static).
    params: model parameters.
    x: [B, H, W, 3] float32 real pixels 0..255, H and W multiples of 2^S.
    given_scale: static s in 1..S+1; the steps of scale >= s are real (none for S+1).
    key: PRNG key.
    snap_latents: snap sampled latents to the quantizer levels.
  Returns:
    SampleResult.
  """
  num_scales = config.num_scales
  if not 1 <= given_scale <= num_scales + 1:
    raise ValueError(f"given_scale must be in 1..{num_scales + 1}, got {given_scale}")
  family = families.get(config)
  run = families.runner(config, params)
  targets = family.targets(config, run, x)
  steps = family.plan(config)
  ctx = {}
  for step, step_key in zip(steps, jax.random.split(key, len(steps))):
    symbols, values = targets[step.name]
    if step.scale < given_scale:
      if step.prior == plan_lib.UNIFORM:
        size = losses.alphabet_size(config, step)
        values = family.values(config, step, jax.random.randint(step_key, symbols.shape, 0, size))
      else:
        values = _draw(config, step, family.predict(config, run, step, ctx), step_key,
                       snap_latents)
    plan_lib.known(ctx, step, values)
  groups = {g: family.group_values(config, ctx, g) for g in plan_lib.group_names(steps)}
  return SampleResult(x=family.image(config, ctx), groups=groups)


def bpsp_kept(config, params, x: jax.Array) -> Dict[int, float]:
  """bpsp still stored when the steps of scale >= s are kept, for s = 1..S (and S+1: 0).

  From the model's likelihood of the real image (paper Eq. (3); the top step under its uniform
  prior), each group normalized by the 3*H*W sub-pixels of x, e.g. {1: z1+z2+z3, 2: z2+z3,
  3: z3}.

  Args:
    x: [B, H, W, 3] float32 pixels.
  Returns:
    {s: bpsp} for s in 1..S+1, plus 0: the total (every group).
  """
  bits = {k: float(v) for k, v in jax.device_get(losses.model_bits(config, params, x)).items()}
  n = x.shape[0] * 3 * x.shape[1] * x.shape[2]
  scale_of = plan_lib.group_scales(families.plan(config))
  kept = {s: sum(b for g, b in bits.items() if scale_of[g] >= s) / n
          for s in range(1, config.num_scales + 2)}
  kept[0] = sum(bits.values()) / n
  return kept
