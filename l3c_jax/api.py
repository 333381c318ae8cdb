"""Python API of the codec: compress / decompress with the shipped or a given model."""

import dataclasses
import os
from typing import Optional, Union

import numpy as np
from PIL import Image

from l3c_jax.coding import codec
from l3c_jax.data import images
from l3c_jax.model_io import Model, load_default_model

ImageLike = Union[np.ndarray, Image.Image, images.ImageData, str, os.PathLike]


def to_image_data(image: ImageLike) -> images.ImageData:
  """Accepts a uint8 array (HxW, HxWx{1,2,3,4}), a Pillow image, ImageData or a file path."""
  if isinstance(image, images.ImageData):
    return image
  if isinstance(image, Image.Image):
    return images.from_pil(image)
  if isinstance(image, (str, os.PathLike)):
    return images.read_image(image)
  return images.from_array(np.asarray(image))


def compress(image: ImageLike, model: Optional[Model] = None,
             tile_size: int = codec.DEFAULT_TILE_SIZE, method: str = "auto",
             metadata: bool = True) -> bytes:
  """Losslessly compresses an 8-bit image to `.l3c` bytes.

  Args:
    image: uint8 array ([H, W] gray, [H, W, 2] gray+alpha, [H, W, 3] RGB, [H, W, 4] RGBA),
      a Pillow image (modes RGB, RGBA, L, LA, P, 1) or an image file path.
    model: a `Model` (see `load_model`); None uses the shipped default model.
    tile_size: large images are coded in independent tiles of this many pixels per side.
    method: 'auto' (the smaller of the model and PNG; few-colour images as PNG or WebP),
      'model', 'png' or 'webp' (see `coding.codec.encode`).
    metadata: keep the image's metadata (ICC profile, EXIF, PNG text, ...; see
      `data.images`); False strips it.
  Returns:
    The compressed file contents.
  Raises:
    ImageError: unsupported image (e.g. 16-bit); ModelError: no default model shipped.
  """
  model = model if model is not None else load_default_model()
  data = to_image_data(image)
  if not metadata:
    data = dataclasses.replace(data, metadata=())
  encoded, _ = codec.encode(data, model, tile_size=tile_size, method=method)
  return encoded


def decompress_image(data: bytes, model: Optional[Model] = None) -> images.ImageData:
  """Decompresses `.l3c` bytes to ImageData (pixels, mode, palette, transparency).

  Raises:
    CodecError: for any file that cannot be decoded exactly (one-line message).
  """
  model = model if model is not None else load_default_model()
  image, _ = codec.decode(data, model)
  return image


def decompress(data: bytes, model: Optional[Model] = None) -> np.ndarray:
  """Decompresses `.l3c` bytes to the original uint8 pixels.

  Returns:
    uint8 [H, W, C] for RGB (C=3), RGBA (4), LA (2); [H, W] for L, 1 (0/255) and P
    (palette indices; use `decompress_image` for the palette).
  """
  return decompress_image(data, model).pixels
