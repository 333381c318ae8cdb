"""Sampling from the discretized logistic mixture (paper Sec. 5.4; docs/l3c_reference.md#sampling).

Pure jnp, no I/O. The mixture component is drawn with the Gumbel-max trick and the logistic by its
inverse CDF, both from uniforms in [1e-5, 1 - 1e-5] like L3C-PyTorch. The continuous draw is then
clamped to the alphabet range and (by default) snapped to the nearest level, which makes the result
an exact draw from the discretized PMF (`pmf.mixture_pmf`, edge bins taking the tails) up to the
1e-5 clip of the uniforms.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from l3c_jax.likelihood.dmll import Alphabet, split_params

UNIFORM_EPS = 1e-5  # uniforms lie in [eps, 1 - eps] (both logs finite), as in the reference


def _uniform(key: jax.Array, shape) -> jax.Array:
  return jax.random.uniform(key, shape, jnp.float32, UNIFORM_EPS, 1.0 - UNIFORM_EPS)


def snap_to_levels(values: jax.Array, alphabet: Alphabet,
                   levels: Optional[jax.Array] = None) -> jax.Array:
  """Maps values to the nearest of the alphabet's L levels (values outside go to the end levels).

  Args:
    values: [...] float32 values in target units.
    alphabet: the L equally spaced levels.
    levels: optional [L] exact level values to return (e.g. the model's quantizer centers, which
      differ from x_min + l*b in the last float32 bit); default x_min + l*b.
  Returns:
    [...] float32 level values.
  """
  idx = jnp.clip(jnp.round((values - alphabet.x_min) / alphabet.bin_width), 0,
                 alphabet.num_bins - 1).astype(jnp.int32)
  if levels is not None:
    return jnp.take(jnp.asarray(levels, jnp.float32), idx, axis=0)
  return alphabet.x_min + idx.astype(jnp.float32) * jnp.float32(alphabet.bin_width)


def sample_logistic_mixture(key: jax.Array, logits: jax.Array, means: jax.Array,
                            log_scales: jax.Array) -> jax.Array:
  """Continuous draws from a logistic mixture (no clamping, no snapping).

  Args:
    key: PRNG key.
    logits, means, log_scales: [..., K] (log-scales already clamped).
  Returns:
    [...] float32 samples.
  """
  k_sel, k_logistic = jax.random.split(key)
  mean, log_scale = _select_component(k_sel, logits, means, log_scales)
  return mean + _logistic_noise(k_logistic, log_scale)


def _select_component(key, logits, *params):
  """Gumbel-max choice of one of K components per element; returns each param at that choice."""
  u = _uniform(key, logits.shape)
  sel = jnp.argmax(logits - jnp.log(-jnp.log(u)), axis=-1)
  onehot = jax.nn.one_hot(sel, logits.shape[-1], dtype=jnp.float32)
  return tuple(jnp.sum(p * onehot, axis=-1) for p in params)


def _logistic_noise(key, log_scale):
  """s * (log u - log(1 - u)): the inverse CDF of a zero-mean logistic with scale s."""
  u = _uniform(key, log_scale.shape)
  return jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))


def sample_mixture(head: jax.Array, key: jax.Array, alphabet: Alphabet, num_mixtures: int,
                   coupled: bool, log_scale_min: float = -7.0, snap: bool = True,
                   levels: Optional[jax.Array] = None) -> jax.Array:
  """Draws targets from the discretized logistic mixture given raw head outputs.

  Every channel picks its own component (the heads predict per-channel mixture logits). With
  `coupled` (RGB) the channels are drawn in order R, G, B: the G mean is shifted by l_gr times
  the drawn R, the B mean by l_br R + l_bg G, with the coefficients of the component chosen for
  G resp. B -- the same conditional that `dmll.log_prob` scores, so (R, G, B) is a draw from the
  model's joint distribution.

  NOTE(l3c-pytorch): the reference couples with the clamped but unrounded R (and G) draws; with
  `snap=True` we couple with the snapped values, i.e. the pixel values actually produced, which is
  what the likelihood conditions on. With `snap=False` the clamped continuous values are used.

  Args:
    head: [..., K_p] raw head outputs (K_p = 4*C*K if coupled else 3*C*K).
    key: PRNG key.
    alphabet: target levels (RGB_ALPHABET or a latent alphabet).
    num_mixtures: K.
    coupled: R->G->B mean coupling (C must be 3).
    log_scale_min: lower clamp of the log-scales.
    snap: snap to the nearest level (integers 0..255 for RGB); else only clamp to the range.
    levels: optional [L] exact level values returned by snapping (see `snap_to_levels`).
  Returns:
    [..., C] float32 samples in target units (pixels 0..255, or latent values).
  """
  num_p = 4 if coupled else 3
  num_channels = head.shape[-1] // (num_p * num_mixtures)
  if num_channels * num_p * num_mixtures != head.shape[-1]:
    raise ValueError(f"head has {head.shape[-1]} channels, not a multiple of "
                     f"{num_p}*K={num_p * num_mixtures}")
  mp = split_params(head, num_channels, num_mixtures, coupled, log_scale_min)
  k_sel, k_logistic = jax.random.split(key)
  if coupled:
    if num_channels != 3:
      raise ValueError(f"coupling needs 3 channels, got {num_channels}")
    # Coefficient rows: 0 = l_gr (used by G), 1 = l_br and 2 = l_bg (used by B).
    coeffs_g = mp.coeffs[..., 0:1, :]
    coeffs_b = mp.coeffs[..., 1:3, :]
    lam = jnp.concatenate([jnp.zeros_like(coeffs_g), coeffs_g, coeffs_b[..., 0:1, :]], axis=-2)
    lam2 = jnp.concatenate([jnp.zeros_like(coeffs_g), jnp.zeros_like(coeffs_g),
                            coeffs_b[..., 1:2, :]], axis=-2)
    mean, log_scale, c_r, c_g = _select_component(k_sel, mp.logits, mp.means, mp.log_scales,
                                                   lam, lam2)
  else:
    mean, log_scale = _select_component(k_sel, mp.logits, mp.means, mp.log_scales)
  draw = mean + _logistic_noise(k_logistic, log_scale)  # [..., C]

  def finish(v):
    v = jnp.clip(v, alphabet.x_min, alphabet.x_max)
    return snap_to_levels(v, alphabet, levels) if snap else v

  if not coupled:
    return finish(draw)
  # c_r[..., c] is channel c's coefficient on R (0 for R, l_gr for G, l_br for B); c_g that on G.
  r = finish(draw[..., 0])
  g = finish(draw[..., 1] + c_r[..., 1] * r)
  b = finish(draw[..., 2] + c_r[..., 2] * r + c_g[..., 2] * g)
  return jnp.stack([r, g, b], axis=-1)
