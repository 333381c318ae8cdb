"""Bits per scale and bpsp from an L3C forward pass (paper Eq. (3); l3c_spec.md Sec. 4)."""

import math
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp

from l3c_jax import likelihood
from l3c_jax.models.config import L3CConfig
from l3c_jax.models.l3c import L3COutput

LN2 = math.log(2.0)


def nll_bits_maps(out: L3COutput, x: jax.Array, config: L3CConfig):
  """Per-element -log2 p for every predicted scale.

  Args:
    out: forward pass output.
    x: [B, H, W, 3] float32 pixels 0..255.
  Returns:
    list of S arrays: entry 0 [B, H, W, 3] bits of x; entry s [B, H/2^s, W/2^s, C_q] bits of z^(s)
    for s = 1..S-1.
  """
  lat = likelihood.latent_alphabet(config.num_levels, config.levels_min, config.levels_max)
  maps = [-likelihood.log_prob(out.head_params[0], x, likelihood.RGB_ALPHABET,
                               config.num_mixtures, True, config.log_scale_min) / LN2]
  for s in range(1, config.num_scales):
    if config.rgb_bicubic_baseline:  # every scale is an RGB image with coupled channels
      lp = likelihood.log_prob(out.head_params[s], out.z[s - 1], likelihood.RGB_ALPHABET,
                               config.num_mixtures, True, config.log_scale_min)
    else:
      lp = likelihood.log_prob(out.head_params[s], out.z[s - 1], lat,
                               config.num_mixtures, False, config.log_scale_min)
    maps.append(-lp / LN2)
  return maps


def uniform_prior_bits(config: L3CConfig, batch: int, height: int, width: int) -> float:
  """Bits of z^(S) under its fixed uniform prior: B * C_q * (H/2^S)(W/2^S) * log2 L."""
  f = config.padding_factor
  return batch * config.latent_channels * (height // f) * (width // f) * math.log2(config.num_levels)


def bits_per_scale(out: L3COutput, x: jax.Array, config: L3CConfig) -> Dict[str, jax.Array]:
  """Total bits of each scale: 'x', 'z1', ..., 'z{S-1}' (model), 'z{S}' (uniform prior)."""
  maps = nll_bits_maps(out, x, config)
  bits = {"x": jnp.sum(maps[0])}
  for s in range(1, config.num_scales):
    bits[f"z{s}"] = jnp.sum(maps[s])
  b, h, w, _ = x.shape
  bits[f"z{config.num_scales}"] = jnp.asarray(uniform_prior_bits(config, b, h, w), jnp.float32)
  return bits


def bpsp_metrics(out: L3COutput, x: jax.Array, config: L3CConfig,
                 num_subpixels: Optional[int] = None,
                 scale_weights: Optional[Sequence[float]] = None):
  """The training loss and the reported bpsp per scale.

  Every scale is normalized by the number of RGB sub-pixels B*3*H*W of the input (not by its own
  element count). The loss is the (optionally weighted) sum over the S predicted scales; the
  uniform z^(S) term is a constant reported in bpsp but excluded from the loss.

  Args:
    num_subpixels: denominator; defaults to B*3*H*W (pass the unpadded count for padded images).
    scale_weights: optional S weights of the predicted scales in the loss (ablations); None = 1.
  Returns:
    (loss, metrics): loss scalar; metrics dict with 'bpsp', 'bpsp_x', 'bpsp_z1', ... .
  """
  b, h, w, _ = x.shape
  n = num_subpixels if num_subpixels is not None else b * 3 * h * w
  bits = bits_per_scale(out, x, config)
  metrics = {f"bpsp_{k}": v / n for k, v in bits.items()}
  predicted = ["x"] + [f"z{s}" for s in range(1, config.num_scales)]
  weights = scale_weights if scale_weights is not None else [1.0] * len(predicted)
  loss = sum(wt * metrics[f"bpsp_{k}"] for wt, k in zip(weights, predicted))
  metrics["bpsp"] = sum(metrics[f"bpsp_{k}"] for k in bits)
  metrics["loss"] = loss
  return loss, metrics
