"""Python API of the codec: compress / decompress with the shipped or a given model."""

import dataclasses
import os
from typing import Optional, Union

import numpy as np
from PIL import Image

from l3c_jax.coding import bitstream
from l3c_jax.coding import codec
from l3c_jax.data import images
from l3c_jax import model_io
from l3c_jax.model_io import Model, load_default_model

ImageLike = Union[np.ndarray, Image.Image, images.ImageData, str, os.PathLike]


def to_image_data(image: ImageLike) -> images.ImageData:
  """Accepts a uint8 array (HxW, HxWx{1,2,3,4}), a Pillow image, ImageData or a file path.

  Raises:
    ImageError: for anything else, whatever it is (wrong dtype or shape, empty, object arrays,
      a path that is missing, a directory, not an image or truncated): the one error type a
      caller has to catch for a bad image.
  """
  if isinstance(image, images.ImageData):
    return image
  if isinstance(image, Image.Image):
    return images.from_pil(image)
  if isinstance(image, (str, os.PathLike)):
    try:
      return images.read_image(image)
    except OSError as e:  # missing, a directory, unreadable
      raise images.ImageError(f"cannot read {os.fspath(image)}: {e.strerror or e}") from None
  try:
    arr = np.asarray(image)
  except Exception as e:  # pylint: disable=broad-except  # ragged lists, objects numpy rejects
    raise images.ImageError(f"cannot interpret {type(image).__name__} as an image array "
                            f"({e})") from None
  return images.from_array(arr)


def _check_data(data) -> bytes:
  """`data` as bytes; CodecError for anything that is not bytes-like."""
  if isinstance(data, (bytes, bytearray, memoryview)):
    return bytes(data)
  raise bitstream.CodecError(f"expected the bytes of an .l3c file, got {type(data).__name__}")


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
    ImageError: for every input that is not a supported image (e.g. 16-bit, float, empty,
      5 channels, a missing or truncated file; see `to_image_data`); ModelError: no default
      model shipped.
  """
  data = to_image_data(image)  # a bad image fails before the model is loaded
  if not metadata:
    data = dataclasses.replace(data, metadata=())
  model = model if model is not None else load_default_model()
  encoded, _ = codec.encode(data, model, tile_size=tile_size, method=method)
  return encoded


def shipped_model_for_file(data: bytes) -> Optional[Model]:
  """The shipped model that decodes `data`: the one its header names (the default model or an
  earlier release's default, `model_io.shipped_model_for`); None for files holding an embedded
  PNG / WebP stream, which need no model.

  Raises:
    CodecError: the bytes are not an l3c-jax file (the header does not parse).
  """
  return shipped_model_for_header(bitstream.unpack(data)[0])


def shipped_model_for_header(header: bitstream.Header) -> Optional[Model]:
  """`shipped_model_for_file` for a header already parsed (`bitstream.unpack(data)[0]`)."""
  if header.method != bitstream.METHOD_MODEL:
    return None
  return model_io.shipped_model_for(header.fingerprint)


def decompress_image(data: bytes, model: Optional[Model] = None) -> images.ImageData:
  """Decompresses `.l3c` bytes to ImageData (pixels, mode, palette, transparency).

  Args:
    data: the file's bytes.
    model: the model that encoded it; None: the shipped model the file names (this release's
      default, or an earlier release's, see `shipped_model_for_file`).
  Raises:
    CodecError: for any input that cannot be decoded exactly, bytes or not (one-line
      message); ModelError: no default model shipped.
  """
  data = _check_data(data)
  model = model if model is not None else shipped_model_for_file(data)
  image, _ = codec.decode(data, model)
  return image


def decompress(data: bytes, model: Optional[Model] = None) -> np.ndarray:
  """Decompresses `.l3c` bytes to the original uint8 pixels.

  Returns:
    uint8 [H, W, C] for RGB (C=3), RGBA (4), LA (2); [H, W] for L, 1 (0/255) and P
    (palette indices; use `decompress_image` for the palette).
  """
  return decompress_image(data, model).pixels
