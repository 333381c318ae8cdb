"""Classical lossless codecs (PNG, WebP, JPEG 2000, JPEG XL) measured through `imagecodecs`.

The comparison columns of the paper's Table 1 (l3c_spec.md Sec. 7.1). Every image is encoded with
the strongest lossless setting each library offers from Python, decoded again and checked
bit-exact; the size counted is the length of the real coded file. `imagecodecs` is the optional
`eval` extra (`pip install '.[eval]'`); nothing here imports JAX.

Settings (see `CODEC_SETTINGS`):
  png       zlib level 9, libpng's default adaptive filters.
  webp      libwebp lossless, method 6, quality 100 (what `cwebp -lossless -z 9` selects).
  jpeg2000  OpenJPEG, reversible 5/3 wavelet + reversible colour transform, raw J2K codestream
            (no JP2 box: a few bytes less), otherwise OpenJPEG's defaults like `opj_compress`.
  jpegxl    libjxl lossless (modular), effort 9, raw codestream (no container box).

All encoders and decoders run with one thread (`numthreads=1`) so times are comparable with each
other and with the learned codec on a shared CPU.
"""

import dataclasses
import importlib
import os
import re
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# Canonical codec keys, in the order tables list them.
CODECS: Tuple[str, ...] = ("png", "webp", "jpeg2000", "jpegxl")

# Human-readable names used as method names in tables and charts.
CODEC_NAMES: Dict[str, str] = {
    "png": "PNG",
    "webp": "WebP",
    "jpeg2000": "JPEG 2000",
    "jpegxl": "JPEG XL",
}

# What exactly was run; written next to every result so numbers are reproducible.
CODEC_SETTINGS: Dict[str, str] = {
    "png": "imagecodecs.png_encode(level=9) (zlib 9)",
    "webp": "imagecodecs.webp_encode(lossless=True, method=6, level=100)",
    "jpeg2000": "imagecodecs.jpeg2k_encode(reversible=True, codecformat='J2K') (5/3 + RCT)",
    "jpegxl": "imagecodecs.jpegxl_encode(lossless=True, effort=9, usecontainer=False)",
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
}

# imagecodecs class holding `.available` for each codec key.
_AVAILABILITY_ATTR = {"png": "PNG", "webp": "WEBP", "jpeg2000": "JPEG2K", "jpegxl": "JPEGXL"}

INSTALL_HINT = ("imagecodecs is needed for the classical-codec comparison: "
                "pip install '.[eval]' (pins imagecodecs==2026.3.6)")

IMAGE_EXTENSIONS = (".png", ".ppm", ".pnm", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")


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
    num_subpixels: 3 * H * W of the input (the bpsp denominator).
  """
  codec: str
  num_bytes: int
  encode_s: float
  decode_s: float
  num_subpixels: int

  @property
  def bpsp(self) -> float:
    """Bits per sub-pixel of the real coded file."""
    return bits_per_subpixel(self.num_bytes, self.num_subpixels)


def bits_per_subpixel(num_bytes: int, num_subpixels: int) -> float:
  """bpsp = 8 * bytes / (3 * H * W).

  Args:
    num_bytes: coded size in bytes.
    num_subpixels: number of sub-pixels of the unpadded image, 3 * H * W.
  Returns:
    bits per sub-pixel (float).
  """
  if num_subpixels <= 0:
    raise ValueError(f"num_subpixels must be positive, got {num_subpixels}")
  return 8.0 * num_bytes / num_subpixels


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
  if key == "jpegxl":
    return (lambda a: ic.jpegxl_encode(a, lossless=True, effort=9, usecontainer=False,
                                       numthreads=1),
            lambda b: ic.jpegxl_decode(b, numthreads=1))
  raise ValueError(f"unknown codec key {key!r}")


def _check_image(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an [H, W, 3] uint8 image, got {image.dtype} {image.shape}")
  return np.ascontiguousarray(image)


def code_image(image: np.ndarray, codec: str) -> CodecResult:
  """Losslessly codes one image with one classical codec and checks the decode bit-exact.

  Args:
    image: [H, W, 3] uint8 RGB.
    codec: codec key or alias ('png', 'webp', 'jpeg2000', 'jpegxl').
  Returns:
    CodecResult with the coded size and encode/decode wall-clock seconds.
  Raises:
    LosslessMismatchError: the decoded image differs from `image`.
    ImportError: imagecodecs is missing.
  """
  image = _check_image(image)
  key = canonical_codec(codec)
  encode, decode = _codec_functions(key)
  t0 = time.perf_counter()
  data = bytes(encode(image))
  t1 = time.perf_counter()
  decoded = np.asarray(decode(data))
  t2 = time.perf_counter()
  if decoded.shape != image.shape or decoded.dtype != image.dtype or not np.array_equal(
      decoded, image):
    raise LosslessMismatchError(
        f"{CODEC_NAMES[key]} round trip is not bit-exact: in {image.dtype}{image.shape}, "
        f"out {decoded.dtype}{decoded.shape}")
  return CodecResult(codec=key, num_bytes=len(data), encode_s=t1 - t0, decode_s=t2 - t1,
                     num_subpixels=int(image.size))


# --- images ---------------------------------------------------------------------------------------


def _natural_key(name: str):
  """Sort key so that '2.png' comes before '10.png'."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(directory: str, max_images: Optional[int] = None) -> List[str]:
  """Image files directly inside `directory`, naturally sorted.

  Args:
    directory: folder of images (not searched recursively).
    max_images: keep only the first N (None or <= 0: all).
  Returns:
    list of file paths.
  """
  names = [n for n in os.listdir(directory)
           if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(directory, n))]
  names.sort(key=_natural_key)
  if max_images is not None and max_images > 0:
    names = names[:max_images]
  return [os.path.join(directory, n) for n in names]


# Pillow modes with 8 bits per sample that convert to RGB without loss of the colour content.
_CONVERTIBLE_MODES = ("L", "P", "LA", "PA", "RGBA", "RGBX", "1", "CMYK", "YCbCr")


def load_rgb(path: str) -> Tuple[np.ndarray, str]:
  """Reads an image as [H, W, 3] uint8 RGB, the single input every codec receives.

  Grayscale policy: a grayscale (or palette) image is evaluated as RGB with its gray value
  replicated into all three channels, for the learned model and every classical codec alike, and
  bpsp is counted over 3*H*W. The paper's model only codes RGB, and giving all codecs the same
  array keeps the comparison fair (JPEG XL/WebP see three equal channels, not a 1-channel file).
  Alpha channels are dropped.

  Args:
    path: image file.
  Returns:
    (image, source_mode): the RGB array and the Pillow mode of the file ('RGB', 'L', ...).
  Raises:
    ValueError: the file is not 8 bits per sample (e.g. 16-bit PNG), which this benchmark skips.
  """
  from PIL import Image  # Pillow is a core dependency; imported here to keep module import light.
  with Image.open(path) as im:
    mode = im.mode
    if mode == "RGB":
      rgb = im
    elif mode in _CONVERTIBLE_MODES:
      rgb = im.convert("RGB")
    else:
      raise ValueError(f"{path}: Pillow mode {mode!r} is not 8-bit RGB/gray; skipped")
    array = np.asarray(rgb, dtype=np.uint8)
  return np.ascontiguousarray(array), mode
