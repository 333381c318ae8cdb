"""Sampling an image given its real representation down to some scale (paper Sec. 5.4).

`sample_given_scale(config, params, x, s, key)` keeps the real z^(s), ..., z^(S) of x (what
would still be stored), runs the decoders D^(S) ... D^(s) on them and then samples z^(s-1),
..., z^(1) and finally the pixels, each from its predicted mixture, feeding every sample to the
next decoder. s = S + 1 samples everything, with z^(S) drawn from its uniform prior. The RGB
pyramids (config.rgb_bicubic_baseline) sample images x^(s-1) instead of latents, phase by phase
with config.phase_context.
Pure JAX (no I/O); the sampling math is in `l3c_jax.likelihood.sampling`.
"""

import dataclasses
import functools
from typing import Dict, Tuple

import jax
import jax.numpy as jnp

from l3c_jax import losses
from l3c_jax.likelihood import dmll
from l3c_jax.likelihood import sampling as mixture_sampling
from l3c_jax.models import quantizer
from l3c_jax.models.config import L3CConfig
from l3c_jax.models.l3c import L3C, PHASES, first_coded_phase, phase_merge


@dataclasses.dataclass(frozen=True)
class SampleResult:
  """One sampling pass.

  Attributes:
    x: [B, H, W, 3] float32 sampled pixels (integers 0..255).
    z: tuple of S arrays [B, H/2^s, W/2^s, C_q]: z^(s) fed to D^(s), real for s >= the given
      scale, sampled below it.
  """
  x: jax.Array
  z: Tuple[jax.Array, ...]


jax.tree_util.register_dataclass(SampleResult, data_fields=["x", "z"], meta_fields=[])


@functools.partial(jax.jit, static_argnames=("config", "given_scale", "snap_latents"))
def sample_given_scale(config: L3CConfig, params, x: jax.Array, given_scale: int,
                       key: jax.Array, snap_latents: bool = True) -> SampleResult:
  """Samples the scales below `given_scale` from the model, keeping the real ones above.

  NOTE(l3c-pytorch): the reference feeds sampled latents to the next decoder as continuous
  values; by default we snap them to the nearest quantizer level, because our decoders only ever
  see levels (in training and coding). `snap_latents=False` reproduces the reference behaviour.
  The pixels are always clamped to [0, 255] and rounded.

  Args:
    config: model configuration (static).
    params: model parameters.
    x: [B, H, W, 3] float32 real pixels 0..255, H and W multiples of 2^S.
    given_scale: static s in 1..S+1; z^(s..S) are the real latents of x (none for S+1).
    key: PRNG key.
    snap_latents: snap sampled latents to the quantizer levels.
  Returns:
    SampleResult.
  """
  num_scales = config.num_scales
  if not 1 <= given_scale <= num_scales + 1:
    raise ValueError(f"given_scale must be in 1..{num_scales + 1}, got {given_scale}")
  model = L3C(config)
  variables = {"params": params}
  _, z_real = model.apply(variables, x, method=L3C.encode)
  levels = jnp.asarray(quantizer.quantization_levels(config.num_levels, config.levels_min,
                                                     config.levels_max))
  lat = dmll.latent_alphabet(config.num_levels, config.levels_min, config.levels_max)
  keys = jax.random.split(key, num_scales + 1)
  z_used = list(z_real)
  if given_scale == num_scales + 1:
    # Unconditional: z^(S) from its uniform prior over the L levels.
    symbols = jax.random.randint(keys[num_scales], z_real[-1].shape, 0, config.num_levels)
    z_used[-1] = (symbols.astype(jnp.float32) if config.rgb_bicubic_baseline
                  else quantizer.from_symbols(symbols, levels))
  if config.rgb_bicubic_baseline:
    return _sample_pyramid(model, variables, config, z_used, given_scale, keys)
  f = None
  x_sample = None
  for s in range(num_scales, 0, -1):
    f, head = model.apply(variables, s, z_used[s - 1], f, method=L3C.decode_scale)
    if s == 1:
      x_sample = mixture_sampling.sample_mixture(
          head, keys[0], dmll.RGB_ALPHABET, config.num_mixtures, True, config.log_scale_min)
    elif s - 1 < given_scale:  # z^(s-1) is not given: sample it
      z_used[s - 2] = mixture_sampling.sample_mixture(
          head, keys[s - 1], lat, config.num_mixtures, False, config.log_scale_min,
          snap=snap_latents, levels=levels)
  return SampleResult(x=x_sample, z=tuple(z_used))


def _sample_pyramid(model, variables, config: L3CConfig, z_used, given_scale: int, keys
                    ) -> SampleResult:
  """sample_given_scale for the RGB pyramids: every scale is an RGB image; with phase_context
  its four phases are sampled in coding order, each from its head given the earlier ones."""
  k = config.num_mixtures

  def draw(head, key):
    return mixture_sampling.sample_mixture(head, key, dmll.RGB_ALPHABET, k, True,
                                           config.log_scale_min)

  f, x_sample = None, None
  for s in range(config.num_scales, 0, -1):
    coarse = z_used[s - 1]
    f, head = model.apply(variables, s, coarse, f, method=L3C.decode_scale)
    if s > 1 and s - 1 >= given_scale:
      continue  # x^(s-1) is given
    if config.phase_context:
      parts = []
      for p, key in enumerate(jax.random.split(keys[s - 1], len(PHASES))):
        if p < first_coded_phase(config):
          parts.append(coarse)  # phase 0 is x^(s) itself
          continue
        known = jnp.concatenate(parts, axis=-1) if parts else None
        parts.append(draw(model.apply(variables, s, p, f, coarse, known,
                                      method=L3C.phase_head), key))
      image = phase_merge(parts)
    else:
      image = draw(head, keys[s - 1])
    if s == 1:
      x_sample = image
    else:
      z_used[s - 2] = image
  return SampleResult(x=x_sample, z=tuple(z_used))


@functools.partial(jax.jit, static_argnames=("config",))
def _bits_per_scale(config: L3CConfig, params, x: jax.Array) -> Dict[str, jax.Array]:
  out = L3C(config).apply({"params": params}, x)
  return losses.bits_per_scale(out, x, config)


def bpsp_kept(config: L3CConfig, params, x: jax.Array) -> Dict[int, float]:
  """bpsp still stored when z^(s), ..., z^(S) are kept, for s = 1..S (and S+1: 0).

  From the model's likelihood of the real image (paper Eq. (3); z^(S) under its uniform prior),
  each scale normalized by the 3*H*W sub-pixels of x, e.g. {1: z1+z2+z3, 2: z2+z3, 3: z3}.

  Args:
    x: [B, H, W, 3] float32 pixels.
  Returns:
    {s: bpsp} for s in 1..S+1, plus 0: the total (x and all latents).
  """
  bits = {k: float(v) for k, v in jax.device_get(_bits_per_scale(config, params, x)).items()}
  n = x.shape[0] * 3 * x.shape[1] * x.shape[2]
  kept = {config.num_scales + 1: 0.0}
  for s in range(config.num_scales, 0, -1):
    kept[s] = kept[s + 1] + bits[f"z{s}"] / n
  kept[0] = kept[1] + bits["x"] / n
  return kept
