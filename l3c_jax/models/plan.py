"""Coding plans: the ordered steps in which a model family codes an image.

A family (see `models.families`) describes its model by one plan, a tuple of `Step`s. Each step
codes one array of symbols (a latent z^(s), an image x^(s) of a pyramid, or one pixel phase of
it) with one prior: uniform, or a head of the network given everything coded before it. Every
user iterates the same plan in the same order:
  training     teacher forcing: each step's head sees the true earlier steps (`losses`);
  encoder      the same, on hard symbols, then the range coder writes them (`coding.codec`);
  decoder      the same, on decoded symbols, which the range coder reads (`coding.codec`);
  sampling     the same, drawing each step's symbols from its head (`sampling`);
  bit-cost maps  per-step bits of the training pass, put back on the image grid (`losses`).
So what training optimizes is what the codec pays, step for step.

A family implements the `Family` interface below. Its network runs through a `Runner`, which
calls the family's Flax module methods either traced (training, sampling: inside the caller's
jit) or each method jitted on its own (the codec: compiled once per shape, as the encoder and
decoder must compute identical tables from identical inputs).
"""

import dataclasses
import functools
from typing import Any, Callable, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

# Alphabets of a step's symbols.
LATENT = "latent"   # z^(s) symbols: indices of the L quantizer levels, C_q channels per position
PIXEL = "pixel"     # 8-bit pixel values, R, G, B coupled (gray images code R only)
# Priors.
UNIFORM = "uniform"  # every symbol equally likely (the top of a hierarchy)
HEAD = "head"        # a discretized logistic mixture predicted by a head of the network


@dataclasses.dataclass(frozen=True)
class Step:
  """One step of a coding plan.

  Attributes:
    name: unique in the plan, e.g. 'z2', 'x', 'x1.p3' (phase 3 of x^(1)).
    group: what the step is part of, for per-scale reports: the name of the coded array,
      'z{s}' for a latent z^(s), 'x{s}' for an image x^(s) of a pyramid, 'x' for the pixels.
    scale: paper scale s of the coded array (0 for the image x itself).
    alphabet: LATENT or PIXEL.
    prior: UNIFORM or HEAD.
    phase: the pixel phase coded (`models.blocks.PHASES`), or None for the whole array.
  """
  name: str
  group: str
  scale: int
  alphabet: str
  prior: str
  phase: Optional[int] = None


def group_names(plan) -> Tuple[str, ...]:
  """The groups of a plan in coding order, each once."""
  return tuple(steps_by_group(plan))


def steps_by_group(plan) -> Dict[str, Tuple[Step, ...]]:
  """{group: its steps} in coding order."""
  out: Dict[str, Tuple[Step, ...]] = {}
  for step in plan:
    out[step.group] = out.get(step.group, ()) + (step,)
  return out


def group_scales(plan) -> Dict[str, int]:
  """{group: paper scale s of the array it codes}, e.g. {'z3': 3, ..., 'x': 0}."""
  return {step.group: step.scale for step in plan}


def scale_groups(plan) -> Dict[int, str]:
  """{paper scale s: the group coded at that scale}, e.g. {3: 'z3', 2: 'z2', 1: 'z1', 0: 'x'}."""
  return {step.scale: step.group for step in plan}


def group_name(prefix: str, scale: int) -> str:
  """'x' for the pixels (scale 0), else prefix + scale: 'z2', 'x3'."""
  return "x" if scale == 0 else f"{prefix}{scale}"


class Runner:
  """Calls methods of a family's Flax module with fixed parameters.

  `run.decode_scale(s, z, f)` is `module.apply({'params': params}, s, z, f,
  method='decode_scale')`. Python ints among the arguments (scales, phases) are static. With
  `jit=True` every (method, static arguments) pair is compiled once per config and process and
  shared by all Runners of that config, so encoders and decoders of one process reuse compiled
  code and build identical tables.
  """

  def __init__(self, module: nn.Module, params, jit: bool = False):
    self.module = module
    self.params = params
    self.jit = jit

  def __getattr__(self, method: str) -> Callable:
    if method.startswith("_"):
      raise AttributeError(method)

    def call(*args):
      if not self.jit:
        return self.module.apply({"params": self.params}, *args, method=method)
      static = tuple(i for i, a in enumerate(args) if isinstance(a, int) or a is None)
      return _jitted(type(self.module), self.module.config, method, static)(self.params, *args)

    return call


@functools.lru_cache(maxsize=None)
def _jitted(module_cls, config, method: str, static: Tuple[int, ...]) -> Callable:
  """One compiled function per (module class, config, method, static argument positions)."""
  module = module_cls(config)

  def fn(params, *args):
    return module.apply({"params": params}, *args, method=method)

  return jax.jit(fn, static_argnums=tuple(i + 1 for i in static))


class Family:
  """A model family: its config class, Flax module and coding plan. Pure (no I/O).

  Context (`ctx`): a dict the family fills while a plan is iterated; it holds the values of
  the steps coded so far (float32, NHWC, what the network sees) and whatever intermediate the
  family wants to reuse (e.g. decoder features). Keys are the family's business.
  """
  name: str = ""
  config_cls: type = type(None)

  def module(self, config, dtype=None) -> nn.Module:
    """The Flax module of this family for `config`; dtype: compute dtype of its float layers
    (None: float32; see `families.module`)."""
    raise NotImplementedError

  def plan(self, config) -> Tuple[Step, ...]:
    """The coding plan (independent of the image size)."""
    raise NotImplementedError

  def targets(self, config, run: Runner, x: jax.Array, train: bool = False,
              soft_sigma=None) -> Dict[str, Tuple[jax.Array, jax.Array]]:
    """Symbols and values of every step, from the image (training and the encoder).

    Args:
      x: [B, H, W, 3] float32 pixels 0..255, H and W multiples of 2^S.
      train: straight-through quantization of learned latents (training), else hard.
    Returns:
      {step name: (symbols int32 [B, h, w, C], values float32 [B, h, w, C])}; values are what
      later steps' heads see (with straight-through gradients in training).
    """
    raise NotImplementedError

  def values(self, config, step: Step, symbols: jax.Array) -> jax.Array:
    """Values of decoded symbols (int32 [B, h, w, C]) -> float32 [B, h, w, C]."""
    raise NotImplementedError

  def predict(self, config, run: Runner, step: Step, ctx: Dict[str, Any]) -> jax.Array:
    """Head parameters of a HEAD step given the context of the steps before it.

    May add reusable intermediates to ctx. Returns [B, h, w, K_p] mixture parameters for the
    positions of the step's symbols.
    """
    raise NotImplementedError

  def group_values(self, config, ctx: Dict[str, Any], group: str) -> jax.Array:
    """Values [B, h, w, C] of a group on its grid once its steps are in ctx."""
    del config  # one step per group, named after it
    return ctx[group]

  def image(self, config, ctx: Dict[str, Any]) -> jax.Array:
    """The pixels x [B, H, W, 3] float32 once every step is in ctx."""
    return self.group_values(config, ctx, "x")

  def group_map(self, config, group: str, step_maps: Dict[str, jax.Array]) -> jax.Array:
    """Per-position values (e.g. bits [B, h, w]) of a group's steps on the group's grid."""
    del config, group  # one step per group: its map is the group's map
    (only,) = step_maps.values()
    return only

  def residual_means(self, config) -> bool:
    """Pixel heads predict offsets from a coarser image (their mean biases start at 0)."""
    del config
    return False

  def head_names(self, config) -> Tuple[Tuple[str, bool], ...]:
    """(parameter name, predicts pixels) of every probability head's module."""
    raise NotImplementedError

  def network_spec(self, config) -> Dict[str, Any]:
    """What the network computes, for the model fingerprint (see `model_io`)."""
    raise NotImplementedError


def known(ctx: Dict[str, Any], step: Step, values: jax.Array) -> Dict[str, Any]:
  """Records the values of a coded step in ctx (the one way steps enter the context)."""
  ctx[step.name] = values
  return ctx


def teacher_forced_heads(family: Family, config, run: Runner, targets) -> Dict[str, jax.Array]:
  """Every HEAD step's parameters with the true values of all earlier steps in context.

  Args:
    targets: as from `family.targets`.
  Returns:
    {step name: head params [B, h, w, K_p]} for the HEAD steps, in plan order.
  """
  ctx: Dict[str, Any] = {}
  heads = {}
  for step in family.plan(config):
    if step.prior == HEAD:
      heads[step.name] = family.predict(config, run, step, ctx)
    known(ctx, step, targets[step.name][1])
  return heads


def as_values(symbols: jax.Array) -> jax.Array:
  """Pixel symbols -> float32 values (pixel steps' values are the pixel values)."""
  return symbols.astype(jnp.float32)
