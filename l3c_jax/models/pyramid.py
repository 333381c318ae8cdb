"""RGB pyramid families: every scale is an RGB image x^(s), predicted from the coarser one.

Three families share the module `RGBPyramid`:
  "rgb_bicubic"         the paper's learned "RGB" baselines (Fig. A2/A3): x^(s) = bicubic x0.5
                        of x^(s-1); the head of D^(s) predicts all of x^(s-1) at once. With
                        num_scales=1 this is "RGB-Shared" (applied recursively at test time,
                        `l3c_jax.baselines`).
  "rgb_bicubic_phased"  the same bicubic pyramid, but each x^(s-1) is coded in four pixel phases
                        (`blocks.PHASES`), each from its own small head on D^(s)'s features and
                        the pixels of the earlier phases; means are residuals from x^(s).
  "rgb_interlaced"      an interlaced pyramid: x^(s) is phase 0 of x^(s-1) (subsampling), so
                        phase 0 is known and only phases 1-3 are coded: no pixel is coded twice.
                        The shipped default model.
NOTE(l3c-pytorch): "rgb_bicubic_phased" and "rgb_interlaced" (and `residual_means`) are our
extensions beyond the paper, whose heads predict the four children of a coarse pixel
independently and so pay for their strong correlation. Still one network pass per phase; no
per-pixel autoregression.

Coding plan: x^(S) with a uniform prior over 256 values; then for s = S..1 the image x^(s-1)
(phase by phase for the phased families), R, then G | R, then B | R, G ('x' is x^(0), the image).
Gray planes are replicated to RGB for the network and only their first channel is coded.
"""

import dataclasses
from typing import Any, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from l3c_jax.models import blocks
from l3c_jax.models import fixed_point
from l3c_jax.models import plan as plan_lib


@dataclasses.dataclass(frozen=True)
class _PyramidFields:
  """Fields shared by the pyramid families. Defaults are the paper's RGB baseline (`cr_rgb.cf`).

  Attributes:
    num_scales: S, number of decoders (images x^(1..S) below the input).
    num_channels: C_f, feature channels of decoders and heads.
    num_res_blocks: ResBlocks per decoder.
    num_mixtures: K, logistic components per sub-pixel.
    log_scale_min: lower clamp of the logistic log-scales.
    pixel_mean_scale: the heads' mean channels are multiplied by this factor (1 in the paper).
    exact: decoders and heads compute in exact fixed point (`models.fixed_point`): the form
      the codec needs for files that decode on any machine; trained quantization-aware.
    head_res_blocks: ResBlocks inside each phase head (phased families; `blocks.PhaseHead`);
      0 is the shipped model's head.
  """
  num_scales: int = 3
  num_channels: int = 64
  num_res_blocks: int = 8
  num_mixtures: int = 10
  log_scale_min: float = -7.0
  pixel_mean_scale: float = 1.0
  exact: bool = False
  head_res_blocks: int = 0

  # How the family builds and codes its pyramid (class attributes, not fields).
  family = ""
  interlaced = False     # x^(s) = phase 0 of x^(s-1) instead of bicubic x0.5
  phased = False         # each x^(s-1) coded in four phases
  residual_means = True  # heads predict means as offsets from x^(s) upsampled (a field below)

  def __post_init__(self):
    if (min(self.num_scales, self.num_channels, self.num_mixtures) < 1
        or self.head_res_blocks < 0 or (self.head_res_blocks and not self.phased)):
      raise ValueError(f"invalid {type(self).__name__}: {self}")
    if self.exact and not fixed_point.is_power_of_two(self.pixel_mean_scale):
      raise ValueError("exact models need a power-of-two pixel_mean_scale")

  @property
  def padding_factor(self) -> int:
    """Images are padded to a multiple of 2^S so every scale has integer size."""
    return 2 ** self.num_scales

  def replace(self, **kwargs):
    return dataclasses.replace(self, **kwargs)

  def to_dict(self) -> dict:
    return {"family": self.family, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class RGBBicubicConfig(_PyramidFields):
  """Family "rgb_bicubic" (the paper's RGB / RGB-Shared baselines).

  Attributes:
    residual_means: NOTE(l3c-pytorch): our deviation, off in the paper configs: each head
      predicts its means as an offset from x^(s) upsampled x2 (nearest), mu = x^(s)_up + head,
      which trains far faster on a CPU; the decoders' inputs x^(s) - 255 * mean are then also
      divided by 128, as L3C's are.
  """
  family = "rgb_bicubic"
  residual_means: bool = False


@dataclasses.dataclass(frozen=True)
class RGBBicubicPhasedConfig(_PyramidFields):
  """Family "rgb_bicubic_phased": bicubic pyramid, four-phase heads, residual means."""
  family = "rgb_bicubic_phased"
  phased = True


@dataclasses.dataclass(frozen=True)
class RGBInterlacedConfig(_PyramidFields):
  """Family "rgb_interlaced": interlaced pyramid (phase 0 known), phases 1-3 coded."""
  family = "rgb_interlaced"
  phased = True
  interlaced = True


def first_coded_phase(config) -> int:
  """Phases below this one are known before x^(s-1) is coded (phase 0 is x^(s) when
  interlaced)."""
  return 1 if config.interlaced else 0


class RGBPyramid(nn.Module):
  """Decoders and heads of an RGB pyramid family. NHWC; pixels float32 in 0..255.

  Methods (use through `plan.Runner`, or `apply(..., method=...)`):
    encode(x): the pyramid x^(1..S) of the image (no parameters).
    decode_scale(s, x_s, f_above): D^(s) -> (f^(s), head params of x^(s-1), or None when
      phased).
    phase_head(s, p, f_s, x_coarse, known): head params of phase p of x^(s-1).
    __call__(x): every head on the true pyramid (used to initialize the parameters).

  dtype: compute dtype of the decoders' and heads' float convs (as `l3c.L3C`'s; None =
  float32, what the codec uses); head parameters are float32 either way.
  """
  config: Any
  dtype: Optional[Any] = None

  def setup(self):
    c = self.config
    dt = self.dtype
    self.input_shift, self.input_scale = blocks.input_normalization(c.exact)
    # Raw decoder inputs x - 255 * mean reach +-141 (exact form: clip range 2^8).
    self.decoders = [blocks.Decoder(c, 4 if c.residual_means else 8, dt)
                     for _ in range(c.num_scales)]
    out = blocks.rgb_head_channels(c.num_mixtures)
    if c.phased:  # entry 4 * (s - 1) + p: phase p of scale s
      self.phase_heads = [blocks.PhaseHead(c.num_channels, out, c.exact, dt,
                                           c.head_res_blocks)
                          for _ in range(c.num_scales) for _ in blocks.PHASES]
    else:
      self.prob_heads = [blocks.ProbHead(c.num_channels, out, c.exact, dt)
                         for _ in range(c.num_scales)]

  def encode(self, x: jax.Array) -> Tuple[jax.Array, ...]:
    """[B, H, W, 3] -> S images x^(s) [B, H/2^s, W/2^s, 3] float32 (integer values)."""
    images = []
    for _ in range(self.config.num_scales):
      finer = images[-1] if images else x
      images.append(blocks.phase_slice(finer, 0) if self.config.interlaced
                    else blocks.bicubic_half(finer))
    return tuple(images)

  def decode_scale(self, s: int, x_s: jax.Array, f_above: Optional[jax.Array]):
    """D^(s) on x^(s) [B, h, w, 3] (+ f^(s+1)) -> (f^(s) [B, 2h, 2w, C_f], head params
    [B, 2h, 2w, 12 K] of x^(s-1), or None for the phased families, see phase_head)."""
    c = self.config
    # Decoder input x^(s) - 255 * mean (no /128) through the one (trainable) mean-shift conv, as
    # in the official RGB baselines (hence their 2,729,076 / 909,700 parameters).
    z = self.input_shift(x_s)
    if c.residual_means:
      # NOTE(l3c-pytorch): with residual means the decoder input is also divided by 128 (as
      # L3C's encoder input is): raw +-128 inputs give head outputs of std ~10 at init
      # (log-scales up to ~75), which costs hundreds of steps to unlearn.
      z = self.input_scale(z)
    f_s = self.decoders[s - 1](z, f_above)
    if c.phased:
      return f_s, None
    head = self.prob_heads[s - 1](f_s)
    up = jnp.repeat(jnp.repeat(x_s, 2, axis=1), 2, axis=2) if c.residual_means else None
    return f_s, self._head_outputs(head, up)

  def _head_outputs(self, head, up):
    c = self.config
    if c.exact:
      return fixed_point.snap_mixture(head, 3, c.num_mixtures, True, 0.0, 1.0, up,
                                      c.pixel_mean_scale)
    return blocks.rgb_head_outputs(head, c.num_mixtures, c.pixel_mean_scale, up)

  def phase_head(self, s: int, p: int, f_s: jax.Array, x_coarse: jax.Array,
                 known: Optional[jax.Array]) -> jax.Array:
    """Head params of phase p of x^(s-1) (phased families).

    Args:
      s, p: static paper scale (1..S) and phase (`first_coded_phase`..3, see blocks.PHASES).
      f_s: [B, 2h, 2w, C_f] features of D^(s).
      x_coarse: [B, h, w, 3] float32 pixel values of x^(s) (the phase grids align with it).
      known: [B, h, w, 3 p] float32 pixels of phases 0..p-1 in order (None for p = 0).
    Returns:
      [B, h, w, 12 K] mixture params of the pixels of phase p.
    """
    ctx = None
    if p > 0:
      # Earlier phases as residuals from the coarser image: small, centred inputs.
      ctx = (known - jnp.tile(x_coarse, (1, 1, 1, p))) * (1.0 / 32.0)
    head = self.phase_heads[4 * (s - 1) + p](blocks.phase_slice(f_s, p), ctx)
    return self._head_outputs(head, x_coarse)

  def __call__(self, x: jax.Array):
    """Every head on the true pyramid of x (teacher forcing) -> {step name: head params}."""
    family = FAMILIES[self.config.family]
    run = _BoundRunner(self)
    targets = family.targets(self.config, run, x)
    return plan_lib.teacher_forced_heads(family, self.config, run, targets)


class _BoundRunner:
  """plan.Runner's interface for calls from inside the module itself (initialization)."""

  def __init__(self, module: nn.Module):
    self.module = module

  def __getattr__(self, method: str):
    return getattr(self.module, method)


class RGBPyramidFamily(plan_lib.Family):
  """Plan and context of the RGB pyramid families (one instance per family name)."""

  def __init__(self, name: str, config_cls: type):
    self.name = name
    self.config_cls = config_cls

  def module(self, config, dtype=None) -> nn.Module:
    return RGBPyramid(config, dtype)

  def plan(self, config) -> Tuple[plan_lib.Step, ...]:
    s_top = config.num_scales
    steps = [plan_lib.Step(f"x{s_top}", f"x{s_top}", s_top, plan_lib.PIXEL, plan_lib.UNIFORM)]
    for s in range(s_top - 1, -1, -1):
      group = plan_lib.group_name("x", s)
      if not config.phased:
        steps.append(plan_lib.Step(group, group, s, plan_lib.PIXEL, plan_lib.HEAD))
        continue
      steps.extend(plan_lib.Step(f"{group}.p{p}", group, s, plan_lib.PIXEL, plan_lib.HEAD, p)
                   for p in range(first_coded_phase(config), len(blocks.PHASES)))
    return tuple(steps)

  def targets(self, config, run, x, train=False, soft_sigma=None):
    del train, soft_sigma  # the pyramid has no learned quantizer
    images = (x,) + tuple(run.encode(x))
    out = {}
    for step in self.plan(config):
      arr = images[step.scale]
      if step.phase is not None:
        arr = blocks.phase_slice(arr, step.phase)
      out[step.name] = (arr.astype(jnp.int32), arr)
    return out

  def values(self, config, step, symbols):
    return plan_lib.as_values(symbols)

  def _scale_image(self, config, ctx: Dict[str, Any], s: int) -> jax.Array:
    """x^(s) from the context (merged from its phases once they are all known)."""
    group = plan_lib.group_name("x", s)
    if group not in ctx:
      ctx[group] = blocks.phase_merge(self._phases(config, ctx, s, len(blocks.PHASES)))
    return ctx[group]

  def _phases(self, config, ctx: Dict[str, Any], s: int, count: int):
    """Values of phases 0..count-1 of x^(s): coded steps from ctx, except phase 0 of an
    interlaced pyramid, which is x^(s+1) itself."""
    group = plan_lib.group_name("x", s)
    return [self._scale_image(config, ctx, s + 1) if config.interlaced and q == 0
            else ctx[f"{group}.p{q}"] for q in range(count)]

  def predict(self, config, run, step, ctx):
    s = step.scale + 1  # D^(s) predicts x^(s-1)
    coarse = self._scale_image(config, ctx, s)
    if f"f{s}" not in ctx:
      ctx[f"f{s}"], ctx[f"head{s}"] = run.decode_scale(s, coarse, ctx.get(f"f{s + 1}"))
    if not config.phased:
      return ctx[f"head{s}"]
    known = None
    if step.phase:
      known = jnp.concatenate(self._phases(config, ctx, step.scale, step.phase), axis=-1)
    return run.phase_head(s, step.phase, ctx[f"f{s}"], coarse, known)

  def group_values(self, config, ctx, group):
    return self._scale_image(config, ctx, 0 if group == "x" else int(group[1:]))

  def group_map(self, config, group, step_maps):
    if not config.phased:
      return super().group_map(config, group, step_maps)
    parts = [step_maps.get(f"{group}.p{p}") for p in range(len(blocks.PHASES))]
    like = next(m for m in parts if m is not None)
    parts = [jnp.zeros_like(like) if m is None else m for m in parts]  # known phase: 0 bits
    return blocks.phase_merge([m[..., None] for m in parts])[..., 0]

  def head_names(self, config):
    if config.phased:  # known phases have no head
      return tuple((f"phase_heads_{4 * s + p}", True) for s in range(config.num_scales)
                   for p in range(first_coded_phase(config), len(blocks.PHASES)))
    return tuple((f"prob_heads_{s}", True) for s in range(config.num_scales))

  def residual_means(self, config) -> bool:
    return config.residual_means

  def network_spec(self, config):
    # l3c-jax-model/1 files spelled every pyramid as flags on the L3C config; the fingerprint
    # keeps that spelling so that the .l3c files of those models stay decodable.
    paper = _PyramidFields()
    spec = {k: v for k, v in dataclasses.asdict(config).items()
            if k != "residual_means" and getattr(paper, k) != v}
    spec.update(rgb_bicubic_baseline=True, latent_channels=3, num_levels=256)
    if config.residual_means:
      spec["pixel_mean_residual"] = True
    if config.phased:
      spec["phase_context"] = True
    if config.interlaced:
      spec["subsample_pyramid"] = True
    if config.exact:
      spec.pop("exact")
      spec["numerics"] = fixed_point.NUMERICS_VERSION
    return spec


FAMILIES = {cls.family: RGBPyramidFamily(cls.family, cls)
            for cls in (RGBBicubicConfig, RGBBicubicPhasedConfig, RGBInterlacedConfig)}
