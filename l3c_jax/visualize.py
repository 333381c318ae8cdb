"""Array helpers for figures (numpy only); figures are drawn by l3c_jax/figures.py."""

import numpy as np


def upsample_nearest(values: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upsampling of the first two axes by an integer factor.

  Args:
    values: [H, W, ...] array.
    factor: integer factor.
  Returns:
    [H * factor, W * factor, ...] array.
  """
  values = np.asarray(values)
  return np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)


def to_uint8_image(pixels: np.ndarray) -> np.ndarray:
  """Pixels (float or int, 0..255) [H, W, 3] -> uint8, rounded and clipped."""
  return np.clip(np.round(np.asarray(pixels, np.float64)), 0, 255).astype(np.uint8)
