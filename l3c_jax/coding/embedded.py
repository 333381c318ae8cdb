"""Classical lossless streams embedded in the `.l3c` container (methods PNG and WebP).

The model is trained on photos; on images with few colours (palette PNGs, GIFs, graphics stored
as RGB) it costs several times what PNG or WebP do (docs/measurements.md#few-colour-images). For
those, and whenever they are smaller than the model's file, the container holds one PNG (zlib
level 9) or lossless WebP (method 6, `exact`: colours under transparent pixels kept) stream of
the pixels instead; mode, palette, transparency and metadata stay in the container's header and
the content CRC covers them and the pixels as for the model.

What goes into the stream, per mode (`stream_image`): PNG holds the image in its own mode. WebP
holds RGB or RGBA only, so gray is replicated to RGB (decoded from the R channel, the others
checked), '1' is gray 0 / 255, and a palette image is its RGB rendering when every used index is
the first palette entry of its colour (indices are then recovered by colour lookup); otherwise
WebP is not offered.

Decoding is bounded before any pixel is decompressed: the embedded file must declare the
header's size, and the bytes it stores uncompressed (`stored_bytes`: 1 bit per pixel for mode '1'
PNGs) may not exceed MAX_EXPANSION times its length. Deflate cannot expand more than ~1032:1, so
no PNG exceeds it; the encoder offers WebP (which can) only within the same bound. Memory and
work thus stay proportional to the file.
"""

import io
from typing import Optional

import numpy as np
from PIL import Image

from l3c_jax.coding import bitstream
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images

MAX_EXPANSION = 1100  # decoded bytes per stream byte, above deflate's ~1032 limit
PNG_LEVEL = 9
_FORMATS = {bitstream.METHOD_PNG: "PNG", bitstream.METHOD_WEBP: "WEBP"}


def palette_rgb_is_invertible(palette: bytes, pixels: np.ndarray) -> bool:
  """True if every used index of `pixels` is the first entry of `palette` with its colour."""
  keys = palette_keys(palette)
  _, first = np.unique(keys, return_index=True)
  first_of_color = np.zeros(len(keys), bool)
  first_of_color[first] = True
  return bool(np.all(first_of_color[np.unique(pixels)]))


def palette_keys(palette: bytes) -> np.ndarray:
  """[n] uint32 keys r << 16 | g << 8 | b of the palette's RGB entries."""
  p = np.frombuffer(palette, np.uint8).reshape(-1, 3).astype(np.uint32)
  return (p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2]


def indices_from_rgb(palette: bytes, rgb: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] colours -> [H, W] uint8 indices of their first palette entry.

  Raises:
    CodecError: a colour that is not in the palette.
  """
  keys = palette_keys(palette)
  uniq, first = np.unique(keys, return_index=True)
  px = rgb.astype(np.uint32)
  px_keys = (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]
  pos = np.clip(np.searchsorted(uniq, px_keys), 0, len(uniq) - 1)
  if not np.all(uniq[pos] == px_keys):
    raise CodecError("corrupt data (decoded colour not in the palette)")
  return first[pos].astype(np.uint8)


def num_colors_at_most(pixels: np.ndarray, limit: int) -> bool:
  """True if uint8 [H, W, C] pixels (C <= 4) have at most `limit` distinct values."""
  flat = pixels.reshape(-1, pixels.shape[-1]) if pixels.ndim == 3 else pixels.reshape(-1, 1)
  keys = np.zeros(flat.shape[0], np.uint32)
  for c in range(flat.shape[1]):
    keys = (keys << 8) | flat[:, c]
  # A sample first: most photos have more than `limit` colours in their first few thousand.
  if len(np.unique(keys[:: max(1, len(keys) // 4096)])) > limit:
    return False
  return len(np.unique(keys)) <= limit


def _webp_input(image: images.ImageData) -> Optional[np.ndarray]:
  px, mode = image.pixels, image.mode
  if mode in ("RGB", "RGBA"):
    return px
  if mode in ("L", "1"):
    return np.repeat(px[..., None], 3, axis=2)
  if mode == "LA":
    return np.concatenate([np.repeat(px[..., :1], 3, axis=2), px[..., 1:]], axis=2)
  if mode == "P" and palette_rgb_is_invertible(image.palette, px):
    return np.frombuffer(image.palette, np.uint8).reshape(-1, 3)[px]
  return None


def encode(image: images.ImageData, method: int) -> Optional[bytes]:
  """The embedded stream of `image` for METHOD_PNG or METHOD_WEBP; None if the method cannot
  hold it (WebP: a palette image whose colours do not identify its indices, or a stream that
  would exceed MAX_EXPANSION)."""
  if method == bitstream.METHOD_PNG:
    return images.png_bytes(image, compress_level=PNG_LEVEL, metadata=False)
  rgb = _webp_input(image)
  if rgb is None or max(image.height, image.width) > 16383:  # WebP's size limit
    return None
  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="WEBP", lossless=True,
                                                  quality=100, method=6, exact=True)
  data = buf.getvalue()
  if stored_bytes(method, image.mode, image.height, image.width) > MAX_EXPANSION * len(data):
    return None
  return data


def stored_bytes(method: int, mode: str, height: int, width: int) -> int:
  """Uncompressed bytes of the image as the embedded format stores it."""
  if method == bitstream.METHOD_WEBP:
    return height * width * (4 if mode in ("RGBA", "LA") else 3)
  if mode == "1":
    return height * -(-width // 8)
  return height * width * {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode, 1)


def decode(header: bitstream.Header, data: bytes) -> np.ndarray:
  """The pixel array of the header's mode from an embedded stream (bounded, see module doc).

  Raises:
    CodecError: the stream is not the declared format, size or mode, or is corrupt.
  """
  if (stored_bytes(header.method, header.mode, header.height, header.width)
      > MAX_EXPANSION * max(len(data), 1)):
    raise CodecError("corrupt header (image size does not match the data)")
  channels = 4 if header.mode in ("RGBA", "LA") else 3
  fmt = _FORMATS[header.method]
  try:
    with images.lifted_pillow_pixel_limit():  # bounded above by MAX_EXPANSION instead
      img = Image.open(io.BytesIO(data), formats=[fmt])
    with img:
      if img.size != (header.width, header.height):
        raise CodecError(f"corrupt data (embedded {fmt} of {img.size[0]}x{img.size[1]} pixels, "
                         f"header says {header.width}x{header.height})")
      img.load()
  except CodecError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (Pillow raises many kinds)
    raise CodecError(f"corrupt data (embedded {fmt}: {type(e).__name__}: {e})") from None
  if fmt == "PNG":
    if img.mode != header.mode:
      raise CodecError(f"corrupt data (embedded PNG of mode {img.mode}, header says "
                       f"{header.mode})")
    if header.mode == "1":
      return np.asarray(img, dtype=bool).astype(np.uint8) * 255
    return np.array(img, dtype=np.uint8)
  want = "RGBA" if channels == 4 else "RGB"
  if img.mode == "RGB" and want == "RGBA":  # libwebp drops an all-opaque alpha plane
    img = img.convert("RGBA")
  if img.mode != want:
    raise CodecError(f"corrupt data (embedded WebP of mode {img.mode})")
  px = np.array(img, dtype=np.uint8)
  if header.mode in ("RGB", "RGBA"):
    return px
  if header.mode == "P":
    return indices_from_rgb(header.palette, px)
  gray = px[..., 0]
  if not (np.array_equal(px[..., 1], gray) and np.array_equal(px[..., 2], gray)):
    raise CodecError("corrupt data (embedded WebP of a gray image is not gray)")
  return np.stack([gray, px[..., 3]], axis=2) if header.mode == "LA" else gray
