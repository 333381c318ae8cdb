"""Family "l3c": the paper's L3C, a hierarchy of S quantized auto-encoders (paper Fig. 2).

Scale indexing follows the paper: z^(0) := x, encoder E^(s) produces z^(s) (s = 1..S), decoder
D^(s) turns z^(s) (plus f^(s+1)) into f^(s), and head s predicts z^(s-1) from f^(s). In Python
lists the entry for paper scale s is at index s - 1.

Coding plan: z^(S) with a uniform prior over its L levels; then z^(S-1), ..., z^(1), each from
the head of D^(s+1); then the pixels x from the head of D^(1) (R, then G | R, then B | R, G).
"""

import dataclasses
from typing import Any, Dict, Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from l3c_jax.models import blocks
from l3c_jax.models import fixed_point
from l3c_jax.models import layers
from l3c_jax.models import plan as plan_lib
from l3c_jax.models import quantizer


@dataclasses.dataclass(frozen=True)
class L3CConfig:
  """Frozen configuration of the "l3c" family. Defaults are the paper's (L3C-PyTorch `cr.cf`).

  Attributes:
    num_scales: S, number of auto-encoder scales (`num_scales`).
    num_channels: C_f, feature channels everywhere (`Cf`).
    num_res_blocks: ResBlocks per encoder and per decoder (`enc/dec.num_blocks`).
    latent_channels: C_q, bottleneck channels of each z^(s) (`q.C`).
    num_levels: L, quantization levels of z (`q.L`).
    levels_min: lowest quantization center (`q.levels_range[0]`).
    levels_max: highest quantization center (`q.levels_range[1]`).
    soft_sigma: sigma of the soft quantizer softmax(-sigma * d^2) (`q.sigma`).
    num_mixtures: K, logistic components per sub-pixel (`prob.K`).
    log_scale_min: lower clamp of the logistic log-scales.
    pixel_mean_scale: the RGB head's mean channels are multiplied by this factor. 1 is L3C
      (means straight in pixel units). Larger values (e.g. 127.5) let the optimizer move the
      means across the pixel range in few steps, like the /128 at the input; used for short runs.
    exact: decoders D^(s) and heads compute in exact fixed point (`models.fixed_point`; the
      encoders, whose output is transmitted, stay float): the form the codec needs for files
      that decode on any machine; trained quantization-aware.
  """
  family = "l3c"  # class attribute, not a field

  num_scales: int = 3
  num_channels: int = 64
  num_res_blocks: int = 8
  latent_channels: int = 5
  num_levels: int = 25
  levels_min: float = -1.0
  levels_max: float = 1.0
  soft_sigma: float = 2.0
  num_mixtures: int = 10
  log_scale_min: float = -7.0
  pixel_mean_scale: float = 1.0
  exact: bool = False

  def __post_init__(self):
    if min(self.num_scales, self.num_channels, self.num_mixtures, self.latent_channels) < 1:
      raise ValueError(f"invalid L3CConfig: {self}")
    if self.exact and not fixed_point.is_power_of_two(self.pixel_mean_scale):
      raise ValueError("exact models need a power-of-two pixel_mean_scale")
    if self.exact and not ((self.num_levels - 1)
                           / (self.levels_max - self.levels_min)).is_integer():
      raise ValueError("exact models need an integer number of bins per unit "
                       "((L - 1) / (levels_max - levels_min))")
    if self.num_levels < 2:
      raise ValueError(f"L3CConfig needs num_levels >= 2, got {self.num_levels}")

  @property
  def padding_factor(self) -> int:
    """Images are padded to a multiple of 2^S so every scale has integer size."""
    return 2 ** self.num_scales

  def replace(self, **kwargs) -> "L3CConfig":
    return dataclasses.replace(self, **kwargs)

  def to_dict(self) -> dict:
    return {"family": self.family, **dataclasses.asdict(self)}


PAPER = L3CConfig()
# The configuration of the official parity fixture (tests/testdata/l3c_pytorch_tiny).
REFERENCE_TINY = L3CConfig(num_channels=16, num_res_blocks=2)


def latent_levels(config: L3CConfig) -> jax.Array:
  """[L] float32 quantization centres of z: the value of each latent symbol."""
  return jnp.asarray(quantizer.quantization_levels(config.num_levels, config.levels_min,
                                                   config.levels_max))


def head_channels(config: L3CConfig, s: int) -> int:
  """K_p of the head on f^(s): 4*3*K for the RGB head (s = 1, with coupling), 3*C_q*K for
  latent heads."""
  if s == 1:
    return blocks.rgb_head_channels(config.num_mixtures)
  return 3 * config.latent_channels * config.num_mixtures


@flax.struct.dataclass
class L3COutput:
  """Everything one forward pass produces (tuples indexed by paper scale s - 1).

  Attributes:
    symbols: S arrays [B, H/2^s, W/2^s, C_q] int32, the symbols of z^(s).
    z: S arrays [B, H/2^s, W/2^s, C_q] float32, quantized values (straight-through in training).
    head_params: S arrays; entry s-1 is head s on f^(s), [B, H/2^(s-1), W/2^(s-1), K_p],
      predicting z^(s-1) (entry 0 predicts the pixels x).
  """
  symbols: Tuple[jax.Array, ...]
  z: Tuple[jax.Array, ...]
  head_params: Tuple[jax.Array, ...]


class L3C(nn.Module):
  """The L3C network. NHWC; input pixels are float32 in 0..255.

  Methods (use with `model.apply(variables, ..., method=...)`, or through `plan.Runner`):
    __call__(x, train): all scales at once -> L3COutput (the official code's forward pass).
    encode(x, train): encoders only -> (symbols, z) tuples.
    decode_scale(s, z_s, f_above): D^(s) and head s -> (f^(s), head params). The codec runs
      only this network function (encoder and decoder side alike).

  dtype: compute dtype of the encoders', decoders' and heads' float convs (training's mixed
  precision, `TrainConfig.compute_dtype`); None, the default and what the codec uses: float32.
  The input normalization, the quantizer (its levels are float32) and the heads' last conv
  compute in float32 either way, so head parameters are float32.
  """
  config: L3CConfig
  dtype: Optional[Any] = None

  def setup(self):
    c = self.config
    dt = self.dtype
    self.input_shift, self.input_scale = blocks.input_normalization()
    self.enc_inputs = [layers.Conv(c.num_channels, 3, dtype=dt) for _ in range(c.num_scales)]
    self.encoders = [blocks.Encoder(c, dt) for _ in range(c.num_scales)]
    self.decoders = [blocks.Decoder(c, dtype=dt) for _ in range(c.num_scales)]
    self.prob_heads = [blocks.ProbHead(c.num_channels, head_channels(c, s), c.exact, dt)
                       for s in range(1, c.num_scales + 1)]

  def levels(self) -> jax.Array:
    return latent_levels(self.config)

  def encode(self, x: jax.Array, train: bool = False, soft_sigma=None):
    """Runs E^(1..S).

    Args:
      x: [B, H, W, 3] float32 pixels in 0..255, H and W multiples of 2^S.
      train: straight-through quantization if True, hard otherwise.
      soft_sigma: overrides config.soft_sigma (may be traced, e.g. swept with vmap).
    Returns:
      (symbols, z): tuples of S arrays [B, H/2^s, W/2^s, C_q] (int32 resp. float32).
    """
    c = self.config
    levels = self.levels()
    feat = self.input_scale(self.input_shift(x))
    symbols, zs = [], []
    for s in range(c.num_scales):
      feat, y = self.encoders[s](self.enc_inputs[s](feat))
      sigma = c.soft_sigma if soft_sigma is None else soft_sigma
      z, sym = quantizer.quantize(y, levels, sigma, train)
      symbols.append(sym)
      zs.append(z)
    return tuple(symbols), tuple(zs)

  def decode_scale(self, s: int, z_s: jax.Array, f_above: Optional[jax.Array]):
    """D^(s) and head s (paper scale s in 1..S; f_above is None for s = S).

    Args:
      s: static paper scale index.
      z_s: [B, h, w, C_q] quantized values of z^(s).
      f_above: [B, h, w, C_f] feature f^(s+1), or None at the coarsest scale.
    Returns:
      (f_s [B, 2h, 2w, C_f], head params [B, 2h, 2w, K_p]).
    """
    f_s = self.decoders[s - 1](z_s, f_above)
    head = self.prob_heads[s - 1](f_s)
    c = self.config
    if c.exact:
      if s == 1:
        return f_s, fixed_point.snap_mixture(head, 3, c.num_mixtures, True, 0.0, 1.0, None,
                                             c.pixel_mean_scale)
      width = (c.levels_max - c.levels_min) / (c.num_levels - 1)
      return f_s, fixed_point.snap_mixture(head, c.latent_channels, c.num_mixtures, False,
                                           c.levels_min, width)
    if s == 1 and self.config.pixel_mean_scale != 1.0:
      head = blocks.rgb_head_outputs(head, self.config.num_mixtures,
                                     self.config.pixel_mean_scale, None)
    return f_s, head

  def __call__(self, x: jax.Array, train: bool = False, soft_sigma=None) -> L3COutput:
    symbols, zs = self.encode(x, train, soft_sigma)
    head_params = [None] * self.config.num_scales
    f = None
    for s in range(self.config.num_scales, 0, -1):
      f, head_params[s - 1] = self.decode_scale(s, zs[s - 1], f)
    return L3COutput(symbols=symbols, z=zs, head_params=tuple(head_params))


class L3CFamily(plan_lib.Family):
  """The paper's L3C: learned latents z^(1..S), coded coarse to fine, then the pixels."""
  name = "l3c"
  config_cls = L3CConfig

  def module(self, config: L3CConfig, dtype=None) -> nn.Module:
    return L3C(config, dtype)

  def plan(self, config: L3CConfig) -> Tuple[plan_lib.Step, ...]:
    s_top = config.num_scales
    steps = [plan_lib.Step(f"z{s_top}", f"z{s_top}", s_top, plan_lib.LATENT, plan_lib.UNIFORM)]
    for s in range(s_top - 1, -1, -1):
      name = plan_lib.group_name("z", s)
      alphabet = plan_lib.PIXEL if s == 0 else plan_lib.LATENT
      steps.append(plan_lib.Step(name, name, s, alphabet, plan_lib.HEAD))
    return tuple(steps)

  def targets(self, config, run, x, train=False, soft_sigma=None):
    symbols, zs = run.encode(x, train, soft_sigma)
    out = {f"z{s}": (symbols[s - 1], zs[s - 1]) for s in range(1, config.num_scales + 1)}
    out["x"] = (x.astype(jnp.int32), x)
    return out

  def values(self, config, step, symbols):
    if step.alphabet == plan_lib.PIXEL:
      return plan_lib.as_values(symbols)
    return quantizer.from_symbols(symbols, latent_levels(config))

  def predict(self, config, run, step, ctx: Dict[str, Any]):
    s = step.scale + 1  # head s on f^(s) predicts z^(s-1)
    f, head = run.decode_scale(s, ctx[f"z{s}"], ctx.get(f"f{s + 1}"))
    ctx[f"f{s}"] = f
    return head

  def head_names(self, config):
    return tuple((f"prob_heads_{s}", s == 0) for s in range(config.num_scales))

  def network_spec(self, config):
    # The fields that differ from the paper config, as l3c-jax-model/1 files spelled them.
    spec = {k: v for k, v in dataclasses.asdict(config).items()
            if k != "exact" and getattr(PAPER, k) != v}
    if config.exact:
      spec["numerics"] = fixed_point.NUMERICS_VERSION
    return spec


FAMILY = L3CFamily()
