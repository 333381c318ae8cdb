"""Building blocks shared by the model families (paper Fig. 2 and our pyramid extensions).

E^(s) `Encoder`, D^(s) `Decoder`, the atrous `ProbHead`, the four-phase `PhaseHead`, the pixel
phases of an image, the bicubic x0.5 pyramid step, and the post-processing of RGB heads.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from l3c_jax.models import layers


def input_normalization(exact: bool = False):
  """The fixed input normalization of L3C as two 1x1 convs: x - 255 * RGB mean, then / 128
  (they are parameters, as in the official code, so the parameter counts match)."""
  shift = layers.AffineConv1x1(scale=1.0, bias=tuple(-255.0 * m for m in layers.RGB_MEAN),
                               exact=exact)
  scale = layers.AffineConv1x1(scale=1.0 / 128.0, bias=(0.0, 0.0, 0.0), exact=exact)
  return shift, scale



class Encoder(nn.Module):
  """E^(s) after its input conv: 5x5/2 downsampling, EDSR body with skip, 1x1 bottleneck.

  dtype: compute dtype of the convs (`layers.Conv`; None = float32).
  """
  config: "object"
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, e_in):
    c = self.config
    d = layers.Conv(c.num_channels, 5, stride=2, dtype=self.dtype, name="down")(e_in)
    feat = layers.ResBody(c.num_channels, c.num_res_blocks, dtype=self.dtype,
                          name="body")(d)   # F^(s)
    y = layers.Conv(c.latent_channels, 1, dtype=self.dtype, name="to_latent")(feat)
    return feat, y


class Decoder(nn.Module):
  """D^(s): 1x1 head on z^(s), fusion by addition of f^(s+1), EDSR body, conv + pixel shuffle.

  in_range_log2: exact form only, inputs z are clipped to [-2^r, 2^r] (raw pixel inputs of
  the paper's RGB baselines need r = 8; normalized pixels and latents 4).
  dtype: compute dtype of the float convs (`layers.Conv`; None = float32).
  """
  config: "object"
  in_range_log2: int = 4
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z, f_above: Optional[jax.Array]):
    c = self.config
    exact = c.exact
    h = layers.Conv(c.num_channels, 1, exact=exact, range_log2=self.in_range_log2,
                    dtype=self.dtype, name="head")(z)
    if f_above is not None:
      h = h + f_above
    g = layers.ResBody(c.num_channels, c.num_res_blocks, exact, self.dtype, name="body")(h)
    return layers.pixel_shuffle(layers.Conv(4 * c.num_channels, 3, exact=exact,
                                            dtype=self.dtype, name="upsample")(g))


class ProbHead(nn.Module):
  """Atrous probability classifier: 3x3 convs at dilation 1, 2, 4 in parallel, concat, 1x1.

  dtype: compute dtype of the atrous convs (None = float32). The final 1x1 conv, which gives
  the mixture parameters, always computes in float32: mixed precision keeps the likelihood, and
  the layer that produces its parameters, in float32 (bfloat16's 8-bit mantissa would round a
  mean of 200 grey levels to a multiple of 1, the width of a pixel bin).
  """
  num_channels: int
  out_channels: int
  exact: bool = False
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, f):
    branches = [layers.Conv(self.num_channels, 3, dilation=r, exact=self.exact,
                            dtype=self.dtype, name=f"atrous{r}")(f) for r in (1, 2, 4)]
    # No dtype on the last conv: flax promotes its (bfloat16) input and float32 kernel to float32.
    return layers.Conv(self.out_channels, 1, exact=self.exact, range_log2=6,
                       name="out")(jnp.concatenate(branches, axis=-1))


class PhaseHead(nn.Module):
  """Head of one pixel phase: two 3x3 convs on D^(s)'s features at the phase's positions,
  concatenated with the earlier phases' pixels, then a 1x1 to the mixture params.

  num_res_blocks: an EDSR body of this many ResBlocks between the two 3x3 convs (0: none, the
  shipped heads), its final conv zero-initialized so that a warm start from heads without it
  starts from the same function.
  dtype: compute dtype of the 3x3 convs (None = float32); the 1x1 to the mixture parameters
  always computes in float32 (as in `ProbHead`).
  """
  num_channels: int
  out_channels: int
  exact: bool = False
  dtype: Optional[Any] = None
  num_res_blocks: int = 0

  @nn.compact
  def __call__(self, f, ctx: Optional[jax.Array]):
    h = f if ctx is None else jnp.concatenate([f, ctx], axis=-1)
    h = nn.relu(layers.Conv(self.num_channels, 3, exact=self.exact, dtype=self.dtype,
                            name="ctx")(h))
    if self.num_res_blocks:
      # Why: the context of the later phases (up to 8 known neighbours) went through two convs
      # only; at the phase grid (1/4 of the pixels) more depth is cheap.
      h = layers.ResBody(self.num_channels, self.num_res_blocks, self.exact, self.dtype,
                         zero_final=True, name="body")(h)
    h = nn.relu(layers.Conv(self.num_channels, 3, exact=self.exact, range_log2=5,
                            dtype=self.dtype, name="mid")(h))
    return layers.Conv(self.out_channels, 1, exact=self.exact, range_log2=6, name="out")(h)


def rgb_head_channels(num_mixtures: int) -> int:
  """K_p of a head predicting RGB pixels with R->G->B coupling: (pi, mu, log s, lambda) x 3 x K."""
  return 4 * 3 * num_mixtures


# Phase p of an image x^(s-1): its pixels at (row % 2, col % 2) == PHASES[p], coded in this order,
# so that phase 1 sees 4 diagonal neighbours of phase 0 and phases 2 and 3 see 4 direct
# neighbours each.
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


def rgb_head_outputs(head: jax.Array, num_mixtures: int, pixel_mean_scale: float,
                     up: Optional[jax.Array]) -> jax.Array:
  """Mean scaling and residual means of an RGB head.

  Args:
    head: [..., 12 K] raw head output; channel layout p*3*K + c*K + k, p = 1 are the means.
    pixel_mean_scale: the means are multiplied by this (1: L3C, means in pixel units).
    up: [..., 3] the coarser image at the predicted positions (residual means), or None.
  Returns:
    [..., 12 K] mixture parameters for `likelihood.dmll`.
  """
  k = num_mixtures
  ck = 3 * k
  if pixel_mean_scale != 1.0:
    # NOTE(l3c-pytorch): optional output scaling of the RGB means; the official model is scale 1.
    head = head.at[..., ck:2 * ck].multiply(pixel_mean_scale)
  if up is not None:
    # NOTE(l3c-pytorch): means relative to the coarser image (residual means). The R->G->B
    # coupling (likelihood.dmll.coupled_means) adds lam * x_R etc. to the G and B means; we
    # subtract lam * up_R here so that it acts on the residuals, mu_G = up_G + m_G
    # + lam_gr (x_R - up_R): a coupling on raw 0..255 values would move G and B far from the
    # upsampled prediction whenever lam is not yet near 0.
    up = up[..., None]                                                  # [..., 3, 1]
    lam = jax.nn.sigmoid(head[..., 3 * ck:4 * ck]).reshape(head.shape[:-1] + (3, k))
    off_r = jnp.broadcast_to(up[..., 0, :], lam.shape[:-2] + (k,))
    off_g = up[..., 1, :] - lam[..., 0, :] * up[..., 0, :]
    off_b = up[..., 2, :] - lam[..., 1, :] * up[..., 0, :] - lam[..., 2, :] * up[..., 1, :]
    head = head.at[..., ck:2 * ck].add(jnp.concatenate([off_r, off_g, off_b], axis=-1))
  return head
