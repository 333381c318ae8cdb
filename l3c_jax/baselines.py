"""The paper's learned RGB baselines at test time (paper Sec. 5.2, Fig. A2/A3;
docs/l3c_reference.md#learned-rgb-baselines).

"RGB" is an `L3CConfig(rgb_bicubic_baseline=True, ...)` with S=3 and evaluates like L3C.
"RGB-Shared" is the same with S=1 (one decoder predicting x from bicubic(x)/2), applied
recursively at test time: x, x/2, x/4, x/8 are predicted by the same network and x/16 is stored
uniformly (8 bits per sub-pixel) — L3C-PyTorch's `--recursive=auto` (3 extra applications).
"""

import math

import jax
import jax.numpy as jnp

from l3c_jax import losses
from l3c_jax.models.config import L3CConfig
from l3c_jax.models.l3c import L3C, bicubic_half


def recursive_padding_factor(depth: int) -> int:
  """Images must be multiples of 2^depth for `depth` recursive applications."""
  return 2 ** depth


def rgb_shared_recursive_bits(params, cfg: L3CConfig, x: jax.Array, depth: int = 4) -> dict:
  """Bits of an image under RGB-Shared applied recursively `depth` times. Pure.

  Args:
    params: parameters of an S=1 RGB baseline model.
    cfg: its config (rgb_bicubic_baseline=True, num_scales=1).
    x: [B, H, W, 3] float32 0..255, H and W multiples of 2^depth.
    depth: number of predicted levels (4 = the paper's x, x/2, x/4, x/8).
  Returns:
    dict with 'x{j}' (bits of level j given level j+1, j < depth) and 'x{depth}' (uniform bits).
  """
  if not cfg.rgb_bicubic_baseline or cfg.num_scales != 1:
    raise ValueError("recursive evaluation is for the RGB-Shared baseline (S=1)")
  model = L3C(cfg)
  bits = {}
  cur = x
  for j in range(depth):
    out = model.apply({"params": params}, cur)
    bits[f"x{j}"] = jnp.sum(losses.nll_bits_maps(out, cur, cfg)[0])
    cur = bicubic_half(cur)
  b, h, w, c = cur.shape
  bits[f"x{depth}"] = jnp.asarray(b * h * w * c * math.log2(256), jnp.float32)
  return bits
