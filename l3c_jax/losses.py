"""Bits of every step of a coding plan, bpsp and the training loss (paper Eq. (3);
docs/l3c_reference.md#loss).

The loss is what the codec pays: the model's -log2 p of each step's symbols, with each HEAD
step's head seeing the true earlier steps (teacher forcing, `plan.teacher_forced_heads`), in the
plan's order. The UNIFORM top step costs log2(alphabet size) per symbol: reported, not optimized.
"""

import functools
import math
from typing import Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from l3c_jax import likelihood
from l3c_jax.models import families
from l3c_jax.models import fixed_point
from l3c_jax.models import plan as plan_lib

LN2 = math.log(2.0)


def alphabet_size(config, step: plan_lib.Step) -> int:
  """Number of symbol values of a step: 256 for pixels, L for latents."""
  return 256 if step.alphabet == plan_lib.PIXEL else config.num_levels


def uniform_bits(config, step: plan_lib.Step, num_symbols: int) -> float:
  """Bits of num_symbols symbols of a step under the uniform prior: n * log2(alphabet size)."""
  return num_symbols * math.log2(alphabet_size(config, step))


def step_alphabet(config, step: plan_lib.Step) -> Tuple[likelihood.Alphabet, bool]:
  """(the mixture's alphabet, whether channels are R->G->B coupled) of a HEAD step."""
  if step.alphabet == plan_lib.PIXEL:
    return likelihood.RGB_ALPHABET, True
  return likelihood.latent_alphabet(config.num_levels, config.levels_min,
                                    config.levels_max), False


def step_bits(config, step: plan_lib.Step, head: jax.Array, values: jax.Array) -> jax.Array:
  """-log2 p of every symbol of a HEAD step.

  Args:
    head: [B, h, w, K_p] head parameters of the step.
    values: [B, h, w, C] float32 values of its symbols (pixels 0..255, or latent levels).
  Returns:
    [B, h, w, C] bits (pixels: C = 3, R, G | R, B | R, G).
  """
  alphabet, coupled = step_alphabet(config, step)
  if config.exact:
    # Exact heads give parameters in bin units (models.fixed_point); symbols are bin indices.
    symbols = jnp.round((values - alphabet.x_min) / alphabet.bin_width)
    lp = fixed_point.log_prob(head, symbols, alphabet.num_bins, config.num_mixtures, coupled)
  else:
    lp = likelihood.log_prob(head, values, alphabet, config.num_mixtures, coupled,
                             config.log_scale_min)
  return -lp / LN2


def plan_bits(config, params, x: jax.Array, train: bool = False, soft_sigma=None,
              dtype=None) -> Tuple[Dict[str, jax.Array], Dict[str, jax.Array]]:
  """Per-symbol bits of every HEAD step and total bits of every UNIFORM step.

  Args:
    x: [B, H, W, 3] float32 pixels 0..255, H and W multiples of 2^S.
    train: straight-through quantization of learned latents.
    soft_sigma: quantizer sigma overriding the config's (may be traced).
    dtype: compute dtype of the network's convs (`families.module`; None: float32). The head
      parameters are float32 whatever it is, and so is everything from here on (the mixture
      likelihood, the bits and their sums).
  Returns:
    (maps, uniform): maps {HEAD step name: [B, h, w, C] bits}; uniform {UNIFORM step name:
    scalar bits}.
  """
  family = families.get(config)
  run = families.runner(config, params, dtype=dtype)
  targets = family.targets(config, run, x, train=train, soft_sigma=soft_sigma)
  heads = plan_lib.teacher_forced_heads(family, config, run, targets)
  maps, uniform = {}, {}
  for step in family.plan(config):
    symbols, values = targets[step.name]
    if step.prior == plan_lib.UNIFORM:
      uniform[step.name] = jnp.asarray(uniform_bits(config, step, symbols.size), jnp.float32)
    else:
      head = heads[step.name]
      if dtype is not None:  # float32 already (the heads' last conv); made certain here
        head, values = head.astype(jnp.float32), values.astype(jnp.float32)
      maps[step.name] = step_bits(config, step, head, values)
  return maps, uniform


def bits_per_group(config, params, x: jax.Array, train: bool = False, soft_sigma=None,
                   dtype=None, example_weights: Optional[jax.Array] = None
                   ) -> Dict[str, jax.Array]:
  """Total bits of each group of the plan, finest first: 'x', then 'z1', ... (or 'x1', ...).

  The coarsest group (uniform prior) comes last, as in the training metrics.

  Args:
    dtype: as in `plan_bits`.
    example_weights: optional [B] weight of each image in the totals (0 for the padding rows
      of a batch padded to a multiple of the device count, `train/distributed.py`); None sums
      the batch as it is.
  """
  maps, uniform = plan_bits(config, params, x, train, soft_sigma, dtype)
  w = example_weights

  def head_total(m):
    if w is None:
      return jnp.sum(m)
    return jnp.sum(jnp.sum(m, axis=tuple(range(1, m.ndim))) * w)  # [B] per image, weighted

  bits = {}
  for group, steps in reversed(plan_lib.steps_by_group(families.plan(config)).items()):
    total = None
    for step in steps:
      if step.name in uniform:  # the same bits for every image
        b = uniform[step.name] if w is None else uniform[step.name] * (jnp.sum(w) / x.shape[0])
      else:
        b = head_total(maps[step.name])
      total = b if total is None else total + b
    bits[group] = total
  return bits


def _in_plan_order(config, tree: Dict[str, jax.Array]) -> Dict[str, jax.Array]:
  """A jitted function's dict (keys sorted by jax) back in plan order, finest group first."""
  return {g: tree[g] for g in reversed(plan_lib.group_names(families.plan(config))) if g in tree}


def model_bits(config, params, x: jax.Array) -> Dict[str, jax.Array]:
  """`bits_per_group` in evaluation mode (hard quantization), jitted: the model's bits of x.

  Args:
    x: [B, H, W, 3] float32 pixels 0..255, H and W multiples of 2^S.
  Returns:
    {group: bits}, finest group first.
  """
  return _in_plan_order(config, _model_bits_jit(config, params, x))


@functools.partial(jax.jit, static_argnums=(0,))
def _model_bits_jit(config, params, x):
  return bits_per_group(config, params, x)


def bit_maps(config, params, x: jax.Array) -> Dict[str, jax.Array]:
  """Bits per position of every HEAD group on its own grid (channels summed), jitted.

  Args:
    x: [B, H, W, 3] float32 pixels.
  Returns:
    {group: [B, H / 2^s, W / 2^s] bits} for the groups with a head, finest first.
  """
  return _in_plan_order(config, _bit_maps_jit(config, params, x))


@functools.partial(jax.jit, static_argnums=(0,))
def _bit_maps_jit(config, params, x):
  family = families.get(config)
  maps, _ = plan_bits(config, params, x)
  out = {}
  for group, steps in plan_lib.steps_by_group(family.plan(config)).items():
    step_maps = {s.name: jnp.sum(maps[s.name], axis=-1) for s in steps if s.name in maps}
    if step_maps:
      out[group] = family.group_map(config, group, step_maps)
  return out


def bpsp_metrics(config, params, x: jax.Array, num_subpixels: Optional[int] = None,
                 scale_weights: Optional[Sequence[float]] = None, train: bool = False,
                 soft_sigma=None, dtype=None, example_weights: Optional[jax.Array] = None):
  """The training loss and the reported bpsp per group.

  Every group is normalized by the number of RGB sub-pixels B*3*H*W of the input (not by its own
  element count). The loss is the (optionally weighted) sum over the groups with a head; the
  uniform top group is a constant reported in bpsp but excluded from the loss.

  Args:
    x: [B, H, W, 3] float32 pixels 0..255.
    num_subpixels: denominator; defaults to B*3*H*W (pass the unpadded count for padded images).
    scale_weights: optional weights of the predicted groups in the loss, finest first ('x',
      then 'z1' / 'x1', ...) (ablations); None = 1.
    dtype: compute dtype of the network's convs (`plan_bits`); the loss is float32.
    example_weights: optional [B] weights of the images (0: a padding row, left out of the
      bits and of the sub-pixel count, so loss and metrics are those of the other rows).
  Returns:
    (loss, metrics): loss scalar; metrics dict with 'bpsp', 'bpsp_x', 'bpsp_z1', ... .
  """
  b, h, w, _ = x.shape
  n = num_subpixels if num_subpixels is not None else b * 3 * h * w
  if example_weights is not None:
    n = jnp.sum(example_weights) * (3 * h * w)
  bits = bits_per_group(config, params, x, train, soft_sigma, dtype, example_weights)
  metrics = {f"bpsp_{k}": v / n for k, v in bits.items()}
  predicted = list(bits)[:-1]  # the last (coarsest) group has the uniform prior
  weights = scale_weights if scale_weights is not None else [1.0] * len(predicted)
  loss = sum(wt * metrics[f"bpsp_{k}"] for wt, k in zip(weights, predicted))
  metrics["bpsp"] = sum(metrics[f"bpsp_{k}"] for k in bits)
  metrics["loss"] = loss
  return loss, metrics
