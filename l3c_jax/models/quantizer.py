"""Fixed-center scalar quantizer Q (paper Sec. 3.2; docs/l3c_reference.md#quantizer)."""

import jax
import jax.numpy as jnp
import numpy as np


def quantization_levels(num_levels: int, levels_min: float = -1.0,
                        levels_max: float = 1.0) -> np.ndarray:
  """The L fixed centers c_l, bit-identical to float32 `torch.linspace` in L3C-PyTorch.

  NOTE(l3c-pytorch): torch's CPU linspace computes `start + step*i` for the first half and
  `end - step*(n-1-i)` for the second half with a fused multiply-add, so its levels are not the
  correctly rounded c_l (the middle one is -2.98e-8, not 0). We reproduce those exact float32
  values so symbols and latent targets of imported official weights match bit for bit.

  Returns:
    [L] float32 array, increasing.
  """
  step = np.float32(np.float32(levels_max - levels_min) / np.float32(num_levels - 1))
  half = num_levels // 2
  out = np.empty(num_levels, np.float32)
  for i in range(num_levels):
    if i < half:
      out[i] = np.float32(np.float64(levels_min) + np.float64(step) * i)
    else:
      out[i] = np.float32(np.float64(levels_max) - np.float64(step) * (num_levels - 1 - i))
  return out


def to_symbols(y: jax.Array, levels: jax.Array) -> jax.Array:
  """Hard assignment: index of the nearest center (ties to the lower index, like torch.min).

  Args:
    y: [..., C] continuous bottleneck values.
    levels: [L] centers.
  Returns:
    [..., C] int32 symbols in [0, L).
  """
  d = jnp.square(y[..., None] - levels)  # [..., C, L]
  return jnp.argmin(d, axis=-1).astype(jnp.int32)


def from_symbols(symbols: jax.Array, levels: jax.Array) -> jax.Array:
  """Maps symbols [..., C] int to their centers [..., C] float32."""
  return jnp.take(levels, symbols, axis=0)


def soft_quantize(y: jax.Array, levels: jax.Array, sigma: float) -> jax.Array:
  """Soft (differentiable) quantization sum_l softmax_l(-sigma (y - c_l)^2) c_l. Shape of y."""
  w = jax.nn.softmax(-sigma * jnp.square(y[..., None] - levels), axis=-1)
  return jnp.sum(w * levels, axis=-1)


def quantize(y: jax.Array, levels: jax.Array, sigma: float, train: bool):
  """Quantizes y; in training with the straight-through estimator.

  Forward value is always the hard center; in training the gradient is that of the soft path
  (`y_soft + stop_gradient(y_hard - y_soft)`), as in L3C-PyTorch's Quantizer.

  Returns:
    (z, symbols): z [..., C] float32 values (STE in training), symbols [..., C] int32.
  """
  symbols = to_symbols(y, levels)
  y_hard = from_symbols(symbols, levels)
  if not train:
    return y_hard, symbols
  y_soft = soft_quantize(y, levels, sigma)
  return y_soft + jax.lax.stop_gradient(y_hard - y_soft), symbols
