"""The L3C network: S encoders E^(s), decoders D^(s) and probability heads (paper Fig. 2).

Scale indexing follows the paper: z^(0) := x, encoder E^(s) produces z^(s) (s = 1..S), decoder
D^(s) turns z^(s) (plus f^(s+1)) into f^(s), and head s predicts z^(s-1) from f^(s). In Python
lists the entry for paper scale s is at index s - 1.
"""

from typing import Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from l3c_jax.models import layers
from l3c_jax.models import quantizer
from l3c_jax.models.config import L3CConfig


def head_channels(config: L3CConfig, s: int) -> int:
  """K_p of the head on f^(s): 4*3*K for RGB heads (s = 1, or every s in the RGB baselines,
  with coupling), 3*C_q*K for latent heads."""
  if s == 1 or config.rgb_bicubic_baseline:
    return 4 * 3 * config.num_mixtures
  return 3 * config.latent_channels * config.num_mixtures


def first_coded_phase(config: L3CConfig) -> int:
  """Phases below this one are known before a finer image is coded (phase_context): with a
  subsampled pyramid phase 0 is the coarser image x^(s) itself."""
  return 1 if config.subsample_pyramid else 0


def head_names(config: L3CConfig) -> Tuple[Tuple[str, bool], ...]:
  """(parameter name, predicts RGB) of every probability head, coarse-to-fine order aside."""
  if config.phase_context:  # known phases have no head
    return tuple((f"phase_heads_{4 * s + p}", True) for s in range(config.num_scales)
                 for p in range(first_coded_phase(config), len(PHASES)))
  return tuple((f"prob_heads_{s}", s == 0 or config.rgb_bicubic_baseline)
               for s in range(config.num_scales))


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


def bicubic_half(x: jax.Array) -> jax.Array:
  """x0.5 bicubic downscaling of 0..255 images, rounded and clipped to integers (RGB baselines).

  NOTE(l3c-pytorch): the official baselines use PIL's BICUBIC resize on uint8 images; we use
  `jax.image.resize(..., 'bicubic', antialias=True)` (Keys a=-0.5 with antialiasing, the same
  filter family) so the pyramid is computed on the device inside the jitted step. Values can differ
  from PIL's by a grey level here and there; only the baselines use this.

  Args:
    x: [B, H, W, C] float32 (H, W even).
  Returns:
    [B, H/2, W/2, C] float32 integers in 0..255.
  """
  b, h, w, c = x.shape
  y = jax.image.resize(x, (b, h // 2, w // 2, c), method="bicubic", antialias=True)
  return jnp.clip(jnp.round(y), 0.0, 255.0)


class Encoder(nn.Module):
  """E^(s) after its input conv: 5x5/2 downsampling, EDSR body with skip, 1x1 bottleneck."""
  config: L3CConfig

  @nn.compact
  def __call__(self, e_in):
    c = self.config
    d = layers.Conv(c.num_channels, 5, stride=2, name="down")(e_in)
    feat = layers.ResBody(c.num_channels, c.num_res_blocks, name="body")(d)   # F^(s)
    y = layers.Conv(c.latent_channels, 1, name="to_latent")(feat)
    return feat, y


class Decoder(nn.Module):
  """D^(s): 1x1 head on z^(s), fusion by addition of f^(s+1), EDSR body, conv + pixel shuffle."""
  config: L3CConfig

  @nn.compact
  def __call__(self, z, f_above: Optional[jax.Array]):
    c = self.config
    h = layers.Conv(c.num_channels, 1, name="head")(z)
    if f_above is not None:
      h = h + f_above
    g = layers.ResBody(c.num_channels, c.num_res_blocks, name="body")(h)
    return layers.pixel_shuffle(layers.Conv(4 * c.num_channels, 3, name="upsample")(g))


class ProbHead(nn.Module):
  """Atrous probability classifier: 3x3 convs at dilation 1, 2, 4 in parallel, concat, 1x1."""
  num_channels: int
  out_channels: int

  @nn.compact
  def __call__(self, f):
    branches = [layers.Conv(self.num_channels, 3, dilation=r, name=f"atrous{r}")(f)
                for r in (1, 2, 4)]
    return layers.Conv(self.out_channels, 1, name="out")(jnp.concatenate(branches, axis=-1))


# Phase p of an image x^(s-1) (phase_context): its pixels at (row % 2, col % 2) == PHASES[p],
# coded in this order, so that phase 1 sees 4 diagonal neighbours of phase 0 and phases 2 and 3
# see 4 direct neighbours each.
PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))


def phase_slice(x: jax.Array, p: int) -> jax.Array:
  """[B, 2h, 2w, C] -> [B, h, w, C], the pixels of phase p."""
  dy, dx = PHASES[p]
  return x[:, dy::2, dx::2]


def phase_merge(parts) -> jax.Array:
  """Inverse of phase_slice: four [B, h, w, C] arrays (phase order) -> [B, 2h, 2w, C]."""
  b, h, w, c = parts[0].shape
  out = jnp.zeros((b, 2 * h, 2 * w, c), parts[0].dtype)
  for p, part in enumerate(parts):
    dy, dx = PHASES[p]
    out = out.at[:, dy::2, dx::2].set(part)
  return out


class PhaseHead(nn.Module):
  """Head of one phase (config.phase_context): two 3x3 convs on D^(s)'s features at the phase's
  positions, concatenated with the earlier phases' pixels, then a 1x1 to the mixture params."""
  num_channels: int
  out_channels: int

  @nn.compact
  def __call__(self, f, ctx: Optional[jax.Array]):
    h = f if ctx is None else jnp.concatenate([f, ctx], axis=-1)
    h = nn.relu(layers.Conv(self.num_channels, 3, name="ctx")(h))
    h = nn.relu(layers.Conv(self.num_channels, 3, name="mid")(h))
    return layers.Conv(self.out_channels, 1, name="out")(h)


class L3C(nn.Module):
  """The full L3C model. NHWC; input pixels are float32 in 0..255.

  Methods (use with `model.apply(variables, ..., method=...)`):
    __call__(x, train): training/evaluation forward pass of all scales -> L3COutput.
    encode(x, train): encoders only -> (symbols, z) tuples.
    decode_scale(s, z_s, f_above): D^(s) and head s -> (f^(s), head params). The codec calls
      only this (on encoder and decoder side alike) so both compute identical tables.
  """
  config: L3CConfig

  def setup(self):
    c = self.config
    self.input_shift = layers.AffineConv1x1(
        scale=1.0, bias=tuple(-255.0 * m for m in layers.RGB_MEAN))
    self.input_scale = layers.AffineConv1x1(scale=1.0 / 128.0, bias=(0.0, 0.0, 0.0))
    if not c.rgb_bicubic_baseline:
      self.enc_inputs = [layers.Conv(c.num_channels, 3) for _ in range(c.num_scales)]
      self.encoders = [Encoder(c) for _ in range(c.num_scales)]
    self.decoders = [Decoder(c) for _ in range(c.num_scales)]
    if c.phase_context:  # entry 4 * (s - 1) + p: phase p of scale s
      self.phase_heads = [PhaseHead(c.num_channels, head_channels(c, s))
                          for s in range(1, c.num_scales + 1) for _ in PHASES]
    else:
      self.prob_heads = [ProbHead(c.num_channels, head_channels(c, s))
                         for s in range(1, c.num_scales + 1)]

  def levels(self) -> jax.Array:
    c = self.config
    return jnp.asarray(quantizer.quantization_levels(c.num_levels, c.levels_min, c.levels_max))

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
    if c.rgb_bicubic_baseline:
      # RGB baselines: the "latents" z^(s) are the bicubic pyramid x^(s), symbols = pixel values.
      zs = []
      for _ in range(c.num_scales):
        finer = zs[-1] if zs else x
        zs.append(phase_slice(finer, 0) if c.subsample_pyramid else bicubic_half(finer))
      return tuple(z.astype(jnp.int32) for z in zs), tuple(zs)
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
      (f_s [B, 2h, 2w, C_f], head params [B, 2h, 2w, K_p]); with config.phase_context the
      head params are None (see phase_head).
    """
    c = self.config
    x_coarse = z_s
    if c.rgb_bicubic_baseline:
      # Decoder head on x^(s) - 255 * mean (no /128) through the one (trainable) mean-shift
      # conv, as in the official RGB baselines (hence their 2,729,076 / 909,700 parameters).
      z_s = self.input_shift(z_s)
      if c.pixel_mean_residual:
        # NOTE(l3c-pytorch): with our residual-mean deviation the decoder input is also divided
        # by 128 (as L3C's encoder input is): raw +-128 inputs give head outputs of std ~10 at
        # init (log-scales up to ~75), which costs hundreds of steps to unlearn.
        z_s = self.input_scale(z_s)
    f_s = self.decoders[s - 1](z_s, f_above)
    if c.phase_context:
      return f_s, None
    head = self.prob_heads[s - 1](f_s)
    up = None
    if c.pixel_mean_residual:
      up = jnp.repeat(jnp.repeat(x_coarse, 2, axis=1), 2, axis=2)       # [B, 2h, 2w, 3]
    return f_s, self._rgb_head_outputs(s, head, up)

  def phase_head(self, s: int, p: int, f_s: jax.Array, x_coarse: jax.Array,
                 known: Optional[jax.Array]) -> jax.Array:
    """Head params of phase p of x^(s-1) (config.phase_context).

    Args:
      s, p: static paper scale (1..S) and phase (0..3, see PHASES).
      f_s: [B, 2h, 2w, C_f] features of D^(s).
      x_coarse: [B, h, w, 3] float32 pixel values of x^(s) (the phase grids align with it).
      known: [B, h, w, 3 p] float32 pixels of phases 0..p-1 in order (None for p = 0).
    Returns:
      [B, h, w, 4 * 3 * K] mixture params of the pixels of phase p.
    """
    if p < first_coded_phase(self.config):
      # Phase 0 is x^(s) itself: a point mass on it (offsets 0, log-scales at their floor), so
      # its bits are 0 and the codec skips it. The phase-0 head's weights stay unused.
      k = self.config.num_mixtures
      head = jnp.zeros(x_coarse.shape[:-1] + (4 * 3 * k,), x_coarse.dtype)
      head = head.at[..., 6 * k:9 * k].set(self.config.log_scale_min)
      return self._rgb_head_outputs(s, head, x_coarse)
    ctx = None
    if p > 0:
      # Earlier phases as residuals from the coarser image: small, centred inputs.
      ctx = (known - jnp.tile(x_coarse, (1, 1, 1, p))) / 32.0
    head = self.phase_heads[4 * (s - 1) + p](phase_slice(f_s, p), ctx)
    return self._rgb_head_outputs(s, head, x_coarse)

  def _rgb_head_outputs(self, s: int, head: jax.Array, up: Optional[jax.Array]) -> jax.Array:
    """Mean scaling / residual means of RGB heads; up [.., 3] is the coarser image at the
    predicted positions (pixel_mean_residual), else None."""
    c = self.config
    # Channel layout of RGB heads: p*C*K + c*K + k, p = 1 are the means.
    ck = 3 * c.num_mixtures
    if c.pixel_mean_scale != 1.0 and (s == 1 or c.rgb_bicubic_baseline):
      # NOTE(l3c-pytorch): optional output scaling of the RGB means (config.pixel_mean_scale);
      # the official model is scale 1.
      head = head.at[..., ck:2 * ck].multiply(c.pixel_mean_scale)
    if up is not None:
      # NOTE(l3c-pytorch): means relative to x^(s) upsampled (config.pixel_mean_residual).
      # The R->G->B coupling (likelihood.dmll.coupled_means) adds lam * x_R etc. to the G and B
      # means; we subtract lam * up_R here so that it acts on the residuals, mu_G = up_G + m_G
      # + lam_gr (x_R - up_R): a coupling on raw 0..255 values would move G and B far from the
      # upsampled prediction whenever lam is not yet near 0.
      k = c.num_mixtures
      up = up[..., None]                                                  # [..., 3, 1]
      lam = jax.nn.sigmoid(head[..., 3 * ck:4 * ck]).reshape(head.shape[:-1] + (3, k))
      off_r = jnp.broadcast_to(up[..., 0, :], lam.shape[:-2] + (k,))
      off_g = up[..., 1, :] - lam[..., 0, :] * up[..., 0, :]
      off_b = up[..., 2, :] - lam[..., 1, :] * up[..., 0, :] - lam[..., 2, :] * up[..., 1, :]
      head = head.at[..., ck:2 * ck].add(jnp.concatenate([off_r, off_g, off_b], axis=-1))
    return head

  def __call__(self, x: jax.Array, train: bool = False, soft_sigma=None) -> L3COutput:
    symbols, zs = self.encode(x, train, soft_sigma)
    head_params = [None] * self.config.num_scales
    f = None
    for s in range(self.config.num_scales, 0, -1):
      f, head_params[s - 1] = self.decode_scale(s, zs[s - 1], f)
      if self.config.phase_context:
        # Teacher forcing: every phase sees the true pixels of the earlier phases.
        parts = [phase_slice(x if s == 1 else zs[s - 2], q) for q in range(len(PHASES))]
        heads = [self.phase_head(s, p, f, zs[s - 1],
                                 jnp.concatenate(parts[:p], axis=-1) if p else None)
                 for p in range(len(PHASES))]
        head_params[s - 1] = phase_merge(heads)
    return L3COutput(symbols=symbols, z=zs, head_params=tuple(head_params))


def init_params(config: L3CConfig, rng: jax.Array, image_size: int = 16):
  """Initializes the model's parameters (PyTorch default init) -> params pytree."""
  size = max(image_size, config.padding_factor)
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  return L3C(config).init(rng, x)["params"]


def param_shapes(config: L3CConfig):
  """Parameter shapes without compiling or allocating (jax.eval_shape)."""
  return jax.eval_shape(lambda k: init_params(config, k), jax.random.key(0))


def count_params(params) -> int:
  return int(sum(int(jnp.size(p)) if hasattr(p, "size") else 0
                 for p in jax.tree_util.tree_leaves(params)))
