"""Discretized mixture of logistics (paper Sec. 3.4;
docs/l3c_reference.md#mixture-likelihood-and-coupling).

Head parameter layout (last axis K_p): index = p*C*K + c*K + k with p = 0 mixture logits,
1 means, 2 log-scales, 3 (RGB only) raw coupling coefficients; C target channels, K mixtures.
All functions are pure jnp and work in float32 like L3C-PyTorch (see `log_prob` for why).
"""

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

LOG_PROB_FLOOR = 1e-12  # clamp on the interior bin mass, as in L3C-PyTorch


@dataclasses.dataclass(frozen=True)
class Alphabet:
  """L equally spaced target levels in [x_min, x_max] (bin width b = (x_max - x_min) / (L - 1))."""
  x_min: float
  x_max: float
  num_bins: int

  @property
  def bin_width(self) -> float:
    return (self.x_max - self.x_min) / (self.num_bins - 1)


RGB_ALPHABET = Alphabet(0.0, 255.0, 256)


def latent_alphabet(num_levels: int = 25, x_min: float = -1.0, x_max: float = 1.0) -> Alphabet:
  return Alphabet(x_min, x_max, num_levels)


@dataclasses.dataclass(frozen=True)
class MixtureParams:
  """Per-channel mixture parameters, each [..., C, K] (coeffs: [..., C, K] sigmoid'ed or None)."""
  logits: jax.Array
  means: jax.Array
  log_scales: jax.Array
  coeffs: Optional[jax.Array]


def split_params(head: jax.Array, num_channels: int, num_mixtures: int, coupled: bool,
                 log_scale_min: float = -7.0) -> MixtureParams:
  """Splits raw head outputs [..., K_p] into per-channel mixture parameters [..., C, K].

  Log-scales are clamped below at log_scale_min; coupling coefficients are sigmoid'ed.
  NOTE(l3c-pytorch): L3C uses sigmoid, not PixelCNN++'s tanh, for the coupling coefficients.
  """
  num_p = 4 if coupled else 3
  p = head.reshape(head.shape[:-1] + (num_p, num_channels, num_mixtures))
  return MixtureParams(
      logits=p[..., 0, :, :],
      means=p[..., 1, :, :],
      log_scales=jnp.maximum(p[..., 2, :, :], log_scale_min),
      coeffs=jax.nn.sigmoid(p[..., 3, :, :]) if coupled else None)


def coupled_means(mp: MixtureParams, x: jax.Array, channel: Optional[int] = None) -> jax.Array:
  """RGB means with the R->G->B coupling on the true (or already decoded) pixel values.

  mu_R = mu_0; mu_G = mu_1 + l_gr x_R; mu_B = mu_2 + l_br x_R + l_bg x_G.

  Args:
    mp: mixture params with means/coeffs [..., 3, K].
    x: [..., 3] pixel values in 0..255 (only channels < `channel` are read when given).
    channel: if given, return only this channel's means [..., K]; else all [..., 3, K].
  """
  m, lam = mp.means, mp.coeffs
  x_r = x[..., 0:1]
  x_g = x[..., 1:2]
  mu_r = m[..., 0, :]
  if channel == 0:
    return mu_r
  mu_g = m[..., 1, :] + lam[..., 0, :] * x_r
  if channel == 1:
    return mu_g
  mu_b = m[..., 2, :] + lam[..., 1, :] * x_r + lam[..., 2, :] * x_g
  if channel == 2:
    return mu_b
  return jnp.stack([mu_r, mu_g, mu_b], axis=-2)


def log_prob_from(logits, means, log_scales, targets, alphabet: Alphabet):
  """log p(target) of a discretized logistic mixture; all inputs [..., K] except targets [...]."""
  b = alphabet.bin_width
  t = targets[..., None]
  centered = t - means
  inv_s = jnp.exp(-log_scales)
  plus_in = inv_s * (centered + b / 2)
  min_in = inv_s * (centered - b / 2)
  # NOTE(l3c-pytorch): interior bins use sigma(plus) - sigma(min) in float32 with a 1e-12 floor,
  # exactly like the reference; PixelCNN++'s log-pdf branch for tiny bins is not used
  # (docs/l3c_reference.md#mixture-likelihood-and-coupling).
  cdf_delta = jax.nn.sigmoid(plus_in) - jax.nn.sigmoid(min_in)
  log_cdf_plus = plus_in - jax.nn.softplus(plus_in)      # lowest level takes the left tail
  log_one_minus_cdf_min = -jax.nn.softplus(min_in)       # highest level takes the right tail
  log_p = jnp.where(
      t < alphabet.x_min + 0.001, log_cdf_plus,
      jnp.where(t > alphabet.x_max - 0.001, log_one_minus_cdf_min,
                jnp.log(jnp.maximum(cdf_delta, LOG_PROB_FLOOR))))
  return jax.nn.logsumexp(log_p + jax.nn.log_softmax(logits, axis=-1), axis=-1)


def log_prob(head: jax.Array, targets: jax.Array, alphabet: Alphabet, num_mixtures: int,
             coupled: bool, log_scale_min: float = -7.0) -> jax.Array:
  """Per-element log-likelihood (nats) of targets under the discretized logistic mixture.

  Args:
    head: [..., K_p] raw head outputs (K_p = 4*C*K if coupled else 3*C*K).
    targets: [..., C] values on the alphabet's levels (pixels 0..255 or latent centers).
    alphabet: the target levels.
    num_mixtures: K.
    coupled: PixelCNN++-style R->G->B mean coupling (RGB only, C must be 3).
    log_scale_min: lower clamp of the log-scales.
  Returns:
    [..., C] float32 log-probabilities (<= 0).
  """
  c = targets.shape[-1]
  mp = split_params(head, c, num_mixtures, coupled, log_scale_min)
  means = coupled_means(mp, targets) if coupled else mp.means
  return log_prob_from(mp.logits, means, mp.log_scales, targets, alphabet)


def channel_mixture(head: jax.Array, channel: int, num_channels: int, num_mixtures: int,
                    coupled: bool, x_prev: Optional[jax.Array] = None,
                    log_scale_min: float = -7.0):
  """(logits, means, log_scales), each [..., K], of one target channel for coding.

  Args:
    head: [..., K_p] raw head outputs.
    channel: channel index c.
    x_prev: [..., C] pixel values; channels < c must hold the decoded values (coupled only).
  """
  mp = split_params(head, num_channels, num_mixtures, coupled, log_scale_min)
  if coupled:
    means = coupled_means(mp, x_prev, channel)
  else:
    means = mp.means[..., channel, :]
  return mp.logits[..., channel, :], means, mp.log_scales[..., channel, :]
