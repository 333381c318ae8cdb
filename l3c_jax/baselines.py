"""The paper's learned RGB baselines at test time (paper Sec. 5.2, Fig. A2/A3;
docs/l3c_reference.md#learned-rgb-baselines).

"RGB" is family "rgb_bicubic" (`RGBBicubicConfig`) with S=3 and evaluates like L3C.
"RGB-Shared" is the same with S=1 (one decoder predicting x from bicubic(x)/2), applied
recursively at test time: x, x/2, x/4, x/8 are predicted by the same network and x/16 is stored
uniformly (8 bits per sub-pixel) — L3C-PyTorch's `--recursive=auto` (3 extra applications).
"""

import math

import jax
import jax.numpy as jnp

from l3c_jax import losses
from l3c_jax.models.blocks import bicubic_half
from l3c_jax.models.pyramid import RGBBicubicConfig


def rgb_shared_recursive_bits(params, cfg: RGBBicubicConfig, x: jax.Array, depth: int = 4
                              ) -> dict:
  """Bits of an image under RGB-Shared applied recursively `depth` times. Pure.

  Args:
    params: parameters of an S=1 RGB baseline model.
    cfg: its config (family rgb_bicubic, num_scales=1).
    x: [B, H, W, 3] float32 0..255, H and W multiples of 2^depth.
    depth: number of predicted levels (4 = the paper's x, x/2, x/4, x/8).
  Returns:
    dict with 'x{j}' (bits of level j given level j+1, j < depth) and 'x{depth}' (uniform bits).
  """
  if cfg.family != RGBBicubicConfig.family or cfg.num_scales != 1:
    raise ValueError("recursive evaluation is for the RGB-Shared baseline (S=1)")
  bits = {}
  cur = x
  for j in range(depth):
    maps, _ = losses.plan_bits(cfg, params, cur)
    bits[f"x{j}"] = jnp.sum(maps["x"])
    cur = bicubic_half(cur)
  b, h, w, c = cur.shape
  bits[f"x{depth}"] = jnp.asarray(b * h * w * c * math.log2(256), jnp.float32)
  return bits
