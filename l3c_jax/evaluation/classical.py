"""Classical lossless codecs (PNG, WebP, JPEG 2000, JPEG XL) measured through `imagecodecs`.

The comparison columns of the paper's Table 1. Every image is encoded with
the strongest lossless setting each library offers from Python, decoded again and checked
bit-exact; the size counted is the length of the real coded file. `imagecodecs` is the optional
`eval` extra (`pip install '.[eval]'`); nothing here imports JAX.

Settings (see `CODEC_SETTINGS`):
  png       zlib level 9, libpng's default adaptive filters.
  webp      libwebp lossless, method 6, quality 100 (what `cwebp -lossless -z 9` selects).
  jpeg2000  OpenJPEG, reversible 5/3 wavelet + reversible colour transform, raw J2K codestream
            (no JP2 box: a few bytes less), otherwise OpenJPEG's defaults like `opj_compress`.
  jpegxl    libjxl lossless (modular), effort 9, raw codestream (no container box).
  jpegxl7   the same at effort 7, libjxl's default (what `cjxl -d 0` does); the bar a photographer
            meets first, so tables report it beside effort 9.

What each codec is given (`codec_input`): the image in its own mode where the codec supports it
(gray stays gray, gray + alpha stays two channels, RGB and RGBA as they are), so it is measured
on the same samples our codec codes and by the same rule (`counting`: bits over the sub-pixels
of the image in its own mode). Exceptions, where a codec has no such lossless representation:
WebP has no gray mode, so it gets gray replicated to RGB (LA to RGBA; its lossless colour
transforms make the copies almost free); palette images are given as their colours (RGB, RGBA
with transparency), since none of these encoders takes palette indices plus a palette through
imagecodecs. The bpsp denominator stays that of the stored image (one sub-pixel per palette
index).

All encoders and decoders run with one thread (`numthreads=1`) so times are comparable with each
other and with the learned codec on a shared CPU.
"""

import dataclasses
import importlib
import time
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from l3c_jax.data import images

# Canonical codec keys, in the order tables list them.
CODECS: Tuple[str, ...] = ("png", "webp", "jpeg2000", "jpegxl", "jpegxl7")

# Human-readable names used as method names in tables and charts.
CODEC_NAMES: Dict[str, str] = {
    "png": "PNG",
    "webp": "WebP",
    "jpeg2000": "JPEG 2000",
    "jpegxl": "JPEG XL",
    "jpegxl7": "JPEG XL e7",
}

# What exactly was run; written next to every result so numbers are reproducible.
CODEC_SETTINGS: Dict[str, str] = {
    "png": "imagecodecs.png_encode(level=9) (zlib 9)",
    "webp": "imagecodecs.webp_encode(lossless=True, method=6, level=100)",
    "jpeg2000": "imagecodecs.jpeg2k_encode(reversible=True, codecformat='J2K') (5/3 + RCT)",
    "jpegxl": "imagecodecs.jpegxl_encode(lossless=True, effort=9, usecontainer=False)",
    "jpegxl7": "imagecodecs.jpegxl_encode(lossless=True, effort=7, usecontainer=False)",
}

_ALIASES = {
    "png": "png",
    "webp": "webp",
    "jpeg2000": "jpeg2000",
    "jpeg2k": "jpeg2000",
    "j2k": "jpeg2000",
    "jp2": "jpeg2000",
    "jpegxl": "jpegxl",
    "jxl": "jpegxl",
    "jpegxl9": "jpegxl",
    "jxl9": "jpegxl",
    "jpegxl7": "jpegxl7",
    "jxl7": "jpegxl7",
}

# imagecodecs class holding `.available` for each codec key.
_AVAILABILITY_ATTR = {"png": "PNG", "webp": "WEBP", "jpeg2000": "JPEG2K", "jpegxl": "JPEGXL",
                      "jpegxl7": "JPEGXL"}

INSTALL_HINT = ("imagecodecs is needed for the classical-codec comparison: "
                "pip install '.[eval]' (pins imagecodecs==2026.3.6)")


class LosslessMismatchError(RuntimeError):
  """A codec's decoded image differs from its input (it was not lossless)."""


@dataclasses.dataclass(frozen=True)
class CodecResult:
  """One image coded by one codec.

  Attributes:
    codec: codec key (one of `CODECS`).
    num_bytes: length of the coded file in bytes.
    encode_s: wall-clock seconds of the encode call.
    decode_s: wall-clock seconds of the decode call.
  """
  codec: str
  num_bytes: int
  encode_s: float
  decode_s: float


def import_imagecodecs():
  """Returns the `imagecodecs` module or raises ImportError with the install hint."""
  try:
    return importlib.import_module("imagecodecs")
  except ImportError as e:
    raise ImportError(INSTALL_HINT) from e


def canonical_codec(name: str) -> str:
  """Maps a user-given codec name ('jxl', 'JPEG2K', ...) to its key in `CODECS`."""
  key = _ALIASES.get(name.strip().lower().replace("-", "").replace("_", "").replace(" ", ""))
  if key is None:
    raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODECS)}")
  return key


def parse_codecs(spec: str) -> List[str]:
  """Parses a comma-separated codec list (png,webp,jxl); empty or none: []; all: every codec."""
  spec = spec.strip()
  if spec.lower() in ("", "none"):
    return []
  if spec.lower() == "all":
    return list(CODECS)
  keys = []
  for part in spec.split(","):
    if part.strip():
      key = canonical_codec(part)
      if key not in keys:
        keys.append(key)
  return keys


def available_codecs(codecs: Sequence[str] = CODECS) -> Tuple[List[str], Dict[str, str]]:
  """Splits the requested codecs into those the installed imagecodecs build can run and notes.

  Args:
    codecs: codec keys or aliases.
  Returns:
    (available, notes): available codec keys in request order; notes maps each skipped codec
    key to the reason.
  Raises:
    ImportError: imagecodecs is not installed (message says how to install it).
  """
  ic = import_imagecodecs()
  available, notes = [], {}
  for name in codecs:
    key = canonical_codec(name)
    cls = getattr(ic, _AVAILABILITY_ATTR[key], None)
    if cls is None or not getattr(cls, "available", False):
      notes[key] = (f"{CODEC_NAMES[key]} is not available in this imagecodecs build "
                    f"({ic.__version__}); skipped")
    else:
      available.append(key)
  return available, notes


def _codec_functions(key: str) -> Tuple[Callable[[np.ndarray], bytes], Callable[[bytes],
                                                                                np.ndarray]]:
  """(encode, decode) callables with the strongest lossless settings for codec `key`."""
  ic = import_imagecodecs()
  if key == "png":
    return (lambda a: ic.png_encode(a, level=9), ic.png_decode)
  if key == "webp":
    # libwebp lossless: `level` is the quality (compression effort) 0..100, method 0..6.
    return (lambda a: ic.webp_encode(a, level=100, lossless=True, method=6, numthreads=1),
            ic.webp_decode)
  if key == "jpeg2000":
    return (lambda a: ic.jpeg2k_encode(a, reversible=True, codecformat="J2K", numthreads=1),
            lambda b: ic.jpeg2k_decode(b, numthreads=1))
  if key in ("jpegxl", "jpegxl7"):
    effort = 9 if key == "jpegxl" else 7
    return (lambda a: ic.jpegxl_encode(a, lossless=True, effort=effort, usecontainer=False,
                                       numthreads=1),
            lambda b: ic.jpegxl_decode(b, numthreads=1))
  raise ValueError(f"unknown codec key {key!r}")


def codec_input(image: images.ImageData, codec: str) -> np.ndarray:
  """The array a classical codec is given for `image` (module docstring: what and why).

  Args:
    image: the image as stored.
    codec: codec key or alias.
  Returns:
    uint8 [H, W] (gray), [H, W, 2] (gray + alpha), [H, W, 3] or [H, W, 4].
  """
  key = canonical_codec(codec)
  if image.mode == "P":
    has_alpha = image.transparency is not None
    pixels = np.asarray(images.to_pil(image).convert("RGBA" if has_alpha else "RGB"), np.uint8)
  else:
    pixels = image.pixels
  if key == "webp" and (pixels.ndim == 2 or pixels.shape[-1] == 2):
    gray = pixels if pixels.ndim == 2 else pixels[..., 0]
    pixels = np.stack([gray] * 3 + ([] if pixels.ndim == 2 else [pixels[..., 1]]), axis=-1)
  return np.ascontiguousarray(pixels)


def code_image(image: images.ImageData, codec: str) -> CodecResult:
  """Losslessly codes one image with one classical codec and checks the decode bit-exact.

  Args:
    image: the image as stored; the codec gets `codec_input(image, codec)`.
    codec: codec key or alias ('png', 'webp', 'jpeg2000', 'jpegxl').
  Returns:
    CodecResult with the coded size and encode/decode wall-clock seconds.
  Raises:
    LosslessMismatchError: the decoded image differs from the codec's input.
    ImportError: imagecodecs is missing.
  """
  key = canonical_codec(codec)
  image = codec_input(image, key)
  encode, decode = _codec_functions(key)
  t0 = time.perf_counter()
  data = bytes(encode(image))
  t1 = time.perf_counter()
  decoded = np.asarray(decode(data))
  t2 = time.perf_counter()
  if (image.ndim == 3 and image.shape[-1] == 4 and decoded.shape == image.shape[:2] + (3,)
      and (image[..., 3] == 255).all()):
    # libwebp drops an alpha channel that is opaque everywhere: nothing was lost.
    decoded = np.concatenate([decoded, image[..., 3:]], axis=-1)
  if decoded.shape != image.shape or decoded.dtype != image.dtype or not np.array_equal(
      decoded, image):
    raise LosslessMismatchError(
        f"{CODEC_NAMES[key]} round trip is not bit-exact: in {image.dtype}{image.shape}, "
        f"out {decoded.dtype}{decoded.shape}")
  return CodecResult(codec=key, num_bytes=len(data), encode_s=t1 - t0, decode_s=t2 - t1)
