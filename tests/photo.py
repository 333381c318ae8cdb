"""A real photo for tests that needs no data directory: a crop of matplotlib's sample photo.

matplotlib ships `mpl-data/sample_data/grace_hopper.jpg` (the US Navy portrait of Grace Hopper,
a work of the US federal government, public domain). The JPEG is Lanczos-downscaled x0.25 before
use, like the training pool's JPEGs (`experiments/prepare_images.py`), so that block artefacts and
chroma subsampling do not make it unlike a lossless photo. Deterministic for the pinned Pillow.
"""

import functools

import numpy as np
from PIL import Image

SOURCE = "matplotlib mpl-data/sample_data/grace_hopper.jpg (public domain)"


@functools.lru_cache(maxsize=None)
def _downscaled() -> np.ndarray:
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  with cbook.get_sample_data("grace_hopper.jpg") as f:
    img = Image.open(f).convert("RGB")
    img.load()
  w, h = img.size
  small = img.resize((w // 4, h // 4), Image.Resampling.LANCZOS)
  return np.asarray(small, np.uint8)


def photo(height: int = 47, width: int = 61) -> np.ndarray:
  """uint8 [height, width, 3]: a centre crop of the downscaled photo (at most 150 x 128)."""
  full = _downscaled()
  if height > full.shape[0] or width > full.shape[1]:
    raise ValueError(f"crop {height}x{width} larger than the photo {full.shape[:2]}")
  y = (full.shape[0] - height) // 2
  x = (full.shape[1] - width) // 2
  return np.ascontiguousarray(full[y:y + height, x:x + width])
