"""Image I/O: the one reader, lister, pad and centre crop; 8-bit modes, exact file writing, tiles.

Numpy + Pillow only (no JAX), so this module is usable without a device.

Supported Pillow modes and how `ImageData.pixels` holds them (uint8 always):
  'RGB'  [H, W, 3];  'RGBA' [H, W, 4];  'L' [H, W];  'LA' [H, W, 2];
  'P'    [H, W] palette indices, with `palette` (raw RGB triples) and `transparency`
         (None, an int index, or per-index alpha bytes, as in Pillow's `info['transparency']`);
  '1'    [H, W] with values 0 / 255 (bilevel, restored as mode '1').
Metadata (`ImageData.metadata`) is kept as PNG chunks, whatever the input format: from a PNG its
METADATA_CHUNKS verbatim (ICC profile, EXIF, text, colour space, physical size, time); from other
formats the ICC profile (iCCP), EXIF (eXIf) and resolution (pHYs) that Pillow reads. `png_bytes`
writes them back (EXIF orientation included, so a rotated photo shows as it did).

Anything with more than 8 bits per sample (Pillow 'I;16*', 'I', 'F', and 16-bit RGB/RGBA/LA PNGs,
which Pillow would silently truncate to 8 bits) is refused with `ImageError`, as are modes with
no lossless 8-bit meaning here ('CMYK', 'YCbCr', 'LAB', 'HSV', 'PA', ...).
"""

import contextlib
import dataclasses
import io
import os
import re
import struct
import threading
import zlib
from typing import BinaryIO, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

SUPPORTED_MODES = ("RGB", "RGBA", "L", "LA", "P", "1")
# Pillow modes whose samples do not fit in 8 bits.
_DEEP_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;32", "I;32S")
_NUM_CHANNELS = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2, "P": 1, "1": 1}

PathOrFile = Union[str, os.PathLike, BinaryIO]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary PNG chunks kept as metadata: colour (iCCP, sRGB, gAMA, cHRM, cICP), EXIF, text,
# physical pixel size and modification time. Others (e.g. sBIT, bKGD, hIST, sPLT, APNG's) describe
# the pixels in ways this codec re-derives or does not keep.
METADATA_CHUNKS = (b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"eXIf", b"tEXt", b"zTXt",
                   b"iTXt", b"pHYs", b"tIME")
Metadata = Tuple[Tuple[bytes, bytes], ...]


class ImageError(ValueError):
  """The image cannot be read or is not one this codec handles (one-line message)."""


@dataclasses.dataclass(frozen=True)
class ImageData:
  """An 8-bit image exactly as it is coded.

  Attributes:
    pixels: uint8 [H, W] (modes 'L', 'P', '1') or [H, W, C] (C = 2 'LA', 3 'RGB', 4 'RGBA').
    mode: one of SUPPORTED_MODES.
    palette: mode 'P' only: raw palette bytes, RGB triples (len a multiple of 3, <= 768).
    transparency: mode 'P' only: None, an int (transparent index) or bytes (alpha per index).
    metadata: ((PNG chunk type, chunk data), ...) in file order, types from METADATA_CHUNKS.
  """
  pixels: np.ndarray
  mode: str
  palette: Optional[bytes] = None
  transparency: Optional[Union[int, bytes]] = None
  metadata: Metadata = ()

  def __post_init__(self):
    if self.mode not in SUPPORTED_MODES:
      raise ImageError(f"unsupported image mode {self.mode!r} (supported: "
                       f"{', '.join(SUPPORTED_MODES)})")
    px = self.pixels
    if not isinstance(px, np.ndarray) or px.dtype != np.uint8:
      raise ImageError("pixels must be a uint8 numpy array")
    c = _NUM_CHANNELS[self.mode]
    if (c == 1 and px.ndim != 2) or (c > 1 and (px.ndim != 3 or px.shape[2] != c)):
      raise ImageError(f"pixels of shape {px.shape} do not match mode {self.mode}")
    if px.shape[0] < 1 or px.shape[1] < 1:
      raise ImageError(f"empty image ({px.shape[0]}x{px.shape[1]})")
    if self.mode == "P":
      if self.palette is None or len(self.palette) % 3 or not 3 <= len(self.palette) <= 768:
        raise ImageError("a palette image needs 1..256 RGB palette entries")
      if int(px.max()) >= len(self.palette) // 3:
        raise ImageError("palette image uses an index beyond its palette")
    elif self.palette is not None or self.transparency is not None:
      raise ImageError("palette / transparency are only meaningful for mode 'P'")
    if self.mode == "1" and not np.all((px == 0) | (px == 255)):
      raise ImageError("mode '1' pixels must be 0 or 255")
    for record in self.metadata:
      if (len(record) != 2 or not isinstance(record[0], bytes) or len(record[0]) != 4
          or not record[0].isalpha() or not isinstance(record[1], bytes)):
        raise ImageError("metadata must be (4-byte PNG chunk type, bytes) pairs")

  @property
  def height(self) -> int:
    return int(self.pixels.shape[0])

  @property
  def width(self) -> int:
    return int(self.pixels.shape[1])

  @property
  def num_pixels(self) -> int:
    """H * W (the bits-per-pixel denominator)."""
    return self.height * self.width

  @property
  def num_subpixels(self) -> int:
    """H * W * C of the stored pixels: the one bpsp denominator (`evaluation.counting`).

    C is the number of channels of the image in its own mode: 'L', '1' and 'P' (palette
    indices) 1, 'LA' 2, 'RGB' 3, 'RGBA' 4.
    """
    return int(self.pixels.size)


def _refuse_deep(mode: str, rawmode: str = ""):
  raise ImageError(f"{rawmode or mode} image: only 8 bits per sample are supported "
                   "(16-bit and float images are refused; convert to 8-bit first)")


def from_pil(img: Image.Image) -> ImageData:
  """Converts a Pillow image to ImageData without changing any pixel value.

  Raises:
    ImageError: for >8-bit images, unsupported modes and animated images.
  """
  for tile in getattr(img, "tile", None) or []:
    # Pillow decodes 16-bit RGB/RGBA/LA PNGs to 8 bits; its raw mode still says ';16'.
    rawmode = tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0]
    if isinstance(rawmode, str) and ";16" in rawmode:
      _refuse_deep(img.mode, rawmode)
  if img.mode in _DEEP_MODES:
    _refuse_deep(img.mode)
  if getattr(img, "n_frames", 1) > 1:
    raise ImageError(f"animated/multi-frame images are not supported ({img.n_frames} frames)")
  if img.mode not in SUPPORTED_MODES:
    raise ImageError(f"unsupported image mode {img.mode!r} (supported: "
                     f"{', '.join(SUPPORTED_MODES)})")
  try:
    img.load()
  except Exception as e:  # truncated / corrupt files surface here
    raise ImageError(f"cannot decode image: {e}") from None
  if img.mode == "1":
    px = np.asarray(img, dtype=bool).astype(np.uint8) * 255
    return ImageData(px, "1")
  px = np.array(img, dtype=np.uint8)
  if img.mode != "P":
    return ImageData(px, img.mode)
  if img.palette is not None and img.palette.mode not in ("RGB", "RGBA"):
    raise ImageError(f"unsupported palette mode {img.palette.mode!r}")
  palette = bytes(img.getpalette("RGB") or [])
  trans = img.info.get("transparency")
  if trans is not None and not isinstance(trans, (int, bytes)):
    raise ImageError(f"unsupported palette transparency {type(trans).__name__}")
  if img.palette is not None and img.palette.mode == "RGBA":
    if trans is not None:
      raise ImageError("palette images with both RGBA palette and tRNS are not supported")
    alpha = bytes(img.getpalette("RGBA")[3::4])
    trans = alpha if any(a != 255 for a in alpha) else None
  return ImageData(px, "P", palette, trans)


def from_array(arr: np.ndarray) -> ImageData:
  """Wraps a uint8 array: [H, W] or [H, W, 1] -> 'L', [H, W, 2] 'LA', 3 'RGB', 4 'RGBA'."""
  arr = np.asarray(arr)
  if arr.dtype != np.uint8:
    if arr.dtype in (np.uint16, np.int32, np.uint32, np.float32, np.float64, np.int64):
      _refuse_deep(str(arr.dtype), f"dtype {arr.dtype}")
    raise ImageError(f"image arrays must be uint8, got {arr.dtype}")
  if arr.ndim == 3 and arr.shape[2] == 1:
    arr = arr[..., 0]
  mode = None
  if arr.ndim == 2:
    mode = "L"
  elif arr.ndim == 3:
    mode = {2: "LA", 3: "RGB", 4: "RGBA"}.get(arr.shape[2])
  if mode is None:
    raise ImageError(f"cannot interpret an array of shape {arr.shape} as an image "
                     "(expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4)")
  return ImageData(np.ascontiguousarray(arr), mode)


# The largest image the codec takes: the bounds of the `.l3c` header (`coding.bitstream`
# MAX_SIDE, MAX_PIXELS; this module may not import the coding package, so they are repeated
# here and tests/test_images.py checks they agree). Pillow's own decompression-bomb limit
# (89 M pixels: a 3-line warning on stderr; an error above 179 M) is replaced by this one.
MAX_SIDE = 1 << 20
MAX_PIXELS = 1 << 31
_pillow_limit_lock = threading.Lock()


@contextlib.contextmanager
def lifted_pillow_pixel_limit():
  """Pillow's MAX_IMAGE_PIXELS lifted for the calls inside (its check runs in Image.open, and in
  the load of a few multi-image formats: GIF, ICO, ICNS); our bound is checked on the header's
  size instead. The setting is process-wide, hence the lock: loader threads take turns only for
  the open (header parsing), not for decoding the pixels."""
  with _pillow_limit_lock:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
      yield
    finally:
      Image.MAX_IMAGE_PIXELS = saved


def _check_size(img: Image.Image) -> None:
  w, h = img.size
  if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
    raise ImageError(f"image of {w}x{h} pixels is too large (at most {MAX_PIXELS} pixels, "
                     f"{MAX_SIDE} per side)")


def png_chunks(data: bytes) -> List[Tuple[bytes, bytes]]:
  """(type, data) of the chunks of PNG file bytes, in order, up to IEND; [] if not a PNG.

  Chunk CRCs are not checked here (Pillow checks them when it decodes the image).
  """
  if not data.startswith(PNG_SIGNATURE):
    return []
  out, pos = [], len(PNG_SIGNATURE)
  while pos + 12 <= len(data):
    size, kind = struct.unpack_from(">I4s", data, pos)
    if pos + 12 + size > len(data):
      break
    out.append((kind, data[pos + 8:pos + 8 + size]))
    pos += 12 + size
    if kind == b"IEND":
      break
  return out


def _metadata(img: Image.Image, raw: bytes) -> Metadata:
  """The metadata of an opened image as PNG chunks (see the module docstring)."""
  if img.format == "PNG":
    return tuple((k, d) for k, d in png_chunks(raw) if k in METADATA_CHUNKS)
  out = []
  icc = img.info.get("icc_profile")
  if icc:  # iCCP: profile name, 0, compression method 0 (zlib), compressed profile
    out.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc, 9)))
  exif = img.info.get("exif")
  if exif:  # eXIf holds the TIFF structure without JPEG's "Exif\0\0" prefix
    out.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else bytes(exif)))
  dpi = img.info.get("dpi")
  if dpi and all(isinstance(v, (int, float)) and 0 < v < 1e6 for v in dpi[:2]):
    out.append((b"pHYs", struct.pack(">IIB", *(round(v / 0.0254) for v in dpi[:2]), 1)))
  return tuple(out)


def read_image(path: PathOrFile, metadata: bool = True) -> ImageData:
  """Reads an image file (any format Pillow reads) into ImageData.

  Args:
    path: file path or binary file object.
    metadata: keep the image's metadata (`ImageData.metadata`).
  Raises:
    ImageError: unreadable, unsupported, >8-bit, animated or too large (`MAX_PIXELS`) images.
    OSError: the file cannot be opened.
  """
  if isinstance(path, (str, os.PathLike)):
    with open(path, "rb") as f:
      raw = f.read()
  else:
    raw = path.read()
  try:
    with lifted_pillow_pixel_limit():
      img = Image.open(io.BytesIO(raw))
  except (Image.UnidentifiedImageError, Image.DecompressionBombError, SyntaxError,
          ValueError) as e:
    raise ImageError(f"cannot read image: {e}") from None
  with img:
    _check_size(img)
    data = from_pil(img)
    if metadata:
      data = dataclasses.replace(data, metadata=_metadata(img, raw))
    return data


def to_rgb(data: ImageData) -> np.ndarray:
  """The colours of `data` as uint8 [H, W, 3]: gray replicated, palette looked up, alpha dropped.

  For what needs RGB whatever the stored mode (the network's input in figures); the codec and
  the evaluation keep the stored mode.
  """
  if data.mode == "RGB":
    return data.pixels
  return np.asarray(to_pil(data).convert("RGB"), np.uint8)


def to_pil(data: ImageData) -> Image.Image:
  """The Pillow image of `data`, mode restored (palette and transparency for 'P')."""
  if data.mode == "1":
    return Image.fromarray(data.pixels, "L").convert("1", dither=Image.Dither.NONE)
  img = Image.fromarray(data.pixels, data.mode)
  if data.mode == "P":
    img.putpalette(data.palette, "RGB")
    if data.transparency is not None:
      img.info["transparency"] = data.transparency
  return img


def _chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(data: ImageData, compress_level: int = 6, metadata: bool = True) -> bytes:
  """Lossless PNG encoding of `data` (mode, palette and transparency kept).

  Args:
    data: the image.
    compress_level: zlib level 0-9.
    metadata: write `data.metadata`, as chunks right after IHDR (before PLTE and IDAT, where
      colour chunks must be; text and EXIF may be anywhere).
  """
  out = _save(data, "PNG", compress_level=compress_level)
  if metadata and data.metadata:
    ihdr_end = len(PNG_SIGNATURE) + 12 + 13
    out = out[:ihdr_end] + b"".join(_chunk(k, d) for k, d in data.metadata) + out[ihdr_end:]
  return out


def _save(data: ImageData, fmt: str, **options) -> bytes:
  buf = io.BytesIO()
  img = to_pil(data)
  kwargs = dict(_SAVE_OPTIONS.get(fmt, {}))
  if data.mode == "P" and data.transparency is not None:
    kwargs["transparency"] = data.transparency
  img.save(buf, format=fmt, **{**kwargs, **options})
  return buf.getvalue()


# Output formats that store 8-bit pixels exactly, by file extension, with the modes each one
# gives back exactly when Pillow reads the file again (checked for every pair in
# tests/test_images.py). Not listed, because Pillow would change the image: WebP of L / LA / 1 / P
# (read back as RGB / RGBA), TIFF of P (the palette is padded to 256 entries), BMP of RGBA (read
# back as RGB) and of P with transparency (dropped), Netpbm of anything with alpha or a palette.
OUTPUT_FORMATS = {
    ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
    ".ppm": "PPM", ".pgm": "PPM", ".pbm": "PPM", ".pnm": "PPM",
}
_EXACT_MODES = {
    "PNG": SUPPORTED_MODES,
    "WEBP": ("RGB", "RGBA"),
    "TIFF": ("RGB", "RGBA", "L", "LA", "1"),
    "BMP": ("RGB", "L", "1", "P"),
    "PPM": ("RGB", "L", "1"),
}
# Netpbm: one mode per specific extension (P6 colour, P5 gray, P4 bilevel); .pnm takes any.
_NETPBM_MODES = {".ppm": ("RGB",), ".pgm": ("L",), ".pbm": ("1",)}
_SAVE_OPTIONS = {
    # exact=True keeps the colour of fully transparent pixels (else libwebp may alter them).
    "WEBP": {"lossless": True, "quality": 100, "exact": True},
    "TIFF": {"compression": "tiff_adobe_deflate"},
}
# Lossy formats by extension, refused with their own message (the decoded image is exact;
# writing it as JPEG would not be).
_LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".jp2", ".j2k", ".jxl", ".heic", ".avif",
                     ".gif")


def output_format(path: str) -> str:
  """The lossless format to write `path` in, from its extension (case-insensitive).

  Returns:
    a Pillow format name: 'PNG', 'WEBP' (lossless), 'TIFF', 'BMP' or 'PPM' (.ppm/.pgm/.pbm/.pnm);
    a path without an extension gets 'PNG'.
  Raises:
    ImageError: for lossy (.jpg, ...) and unknown extensions (one-line message).
  """
  ext = os.path.splitext(os.fspath(path))[1].lower()
  if not ext:
    return "PNG"
  if ext in OUTPUT_FORMATS:
    return OUTPUT_FORMATS[ext]
  known = ", ".join(OUTPUT_FORMATS)
  if ext in _LOSSY_EXTENSIONS:
    raise ImageError(f"cannot write {ext} exactly (lossy or not supported); "
                     f"use one of {known}")
  raise ImageError(f"unknown output extension {ext!r}; use one of {known}")


def check_storable(fmt: str, mode: str, has_transparency: bool = False,
                   extension: str = "") -> None:
  """Raises ImageError unless format `fmt` (file `extension`) stores `mode` images exactly.

  Lets a caller refuse before decoding, from a file header's mode (`encode_image_file` checks
  the same).
  """
  if fmt not in _EXACT_MODES:
    raise ImageError(f"unknown output format {fmt!r}")
  modes = _NETPBM_MODES.get(extension.lower(), _EXACT_MODES[fmt]) if fmt == "PPM" else (
      _EXACT_MODES[fmt])
  if mode not in modes or (fmt == "BMP" and has_transparency):
    what = f"{mode} images" + (" with transparency" if has_transparency else "")
    raise ImageError(f"{extension or fmt} cannot store {what} exactly; use .png")


def _icc_and_exif(metadata: Metadata) -> dict:
  """Pillow save options for the ICC profile and EXIF among PNG-chunk metadata."""
  options = {}
  for kind, body in metadata:
    if kind == b"iCCP" and b"\0" in body[:80]:
      try:  # profile name, NUL, compression method, zlib data
        options["icc_profile"] = zlib.decompress(body[body.index(b"\0") + 2:])
      except zlib.error:
        pass
    elif kind == b"eXIf":
      options["exif"] = b"Exif\0\0" + body
  return options


def encode_image_file(image: ImageData, fmt: str, extension: str = "",
                      metadata: bool = True) -> bytes:
  """Encodes `image` as a file of format `fmt` (from `output_format`) that reads back exactly.

  Args:
    image: the image.
    fmt: 'PNG', 'WEBP', 'TIFF', 'BMP' or 'PPM'.
    extension: the output file's extension (e.g. '.pgm'), for the Netpbm one-mode extensions.
    metadata: write `image.metadata`: every chunk into a PNG; the ICC profile and EXIF into WebP
      and TIFF; none into BMP and Netpbm, which have no place for them.
  Returns:
    the file's bytes; pixels, mode, palette and transparency read back unchanged.
  Raises:
    ImageError: if `fmt` cannot store this image's mode exactly (the message suggests .png).
  """
  check_storable(fmt, image.mode, image.transparency is not None, extension)
  if fmt == "PNG":
    return png_bytes(image, metadata=metadata)
  options = _icc_and_exif(image.metadata) if metadata and fmt in ("WEBP", "TIFF") else {}
  data = _save(image, fmt, **options)
  # A Pillow or codec-library version may store some case differently: never hand out a file
  # that does not read back exactly (costs one decode of the written image).
  back = read_image(io.BytesIO(data))
  if (back.mode, back.palette, back.transparency) != (image.mode, image.palette,
                                                      image.transparency) or not np.array_equal(
                                                          back.pixels, image.pixels):
    raise ImageError(f"{extension or fmt} did not store this {image.mode} image exactly; "
                     "use .png")
  return data


IMAGE_EXTENSIONS = (".png", ".ppm", ".pnm", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")


def _natural_key(name: str):
  """Sort key so that '2.png' comes before '10.png'."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _raise(err: OSError):
  raise err


def list_images(paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
                max_images: Optional[int] = None, recursive: bool = False) -> List[str]:
  """Image files named by `paths`: directories expand to the image files inside them.

  The one image lister: evaluation (flat folders of test images) and training (`pipeline`,
  recursive over photo collections) both use it.

  Args:
    paths: one path or a sequence of paths; a directory contributes its files with an
      `IMAGE_EXTENSIONS` suffix (any case) in natural order ('2' before '10'), a file is taken
      as given.
    max_images: keep only the first N of each directory (None or <= 0: all).
    recursive: also list the files in sub-directories (symbolic links followed), ordered by
      their path relative to the directory.
  Returns:
    file paths, in the order of `paths`.
  Raises:
    FileNotFoundError: a path does not exist.
    OSError: a directory cannot be read.
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  out = []
  for p in map(str, paths):
    if os.path.isdir(p):
      walk = os.walk(p, onerror=_raise, followlinks=True) if recursive else [
          (p, None, os.listdir(p))]
      found = []
      for root, _, files in walk:
        found.extend(os.path.relpath(os.path.join(root, n), p) for n in files
                     if n.lower().endswith(IMAGE_EXTENSIONS)
                     and os.path.isfile(os.path.join(root, n)))
      found.sort(key=_natural_key)
      if max_images is not None and max_images > 0:
        found = found[:max_images]
      out.extend(os.path.join(p, n) for n in found)
    elif os.path.isfile(p):
      out.append(p)
    else:
      raise FileNotFoundError(f"no such file or directory: {p}")
  return out


def center_crop(pixels: np.ndarray, size, multiple: int = 1) -> np.ndarray:
  """The central size x size (or height x width) crop of [H, W, ...], trimmed to a multiple.

  A side shorter than `size` is kept whole. Both sides are then cut down (centred) to a multiple
  of `multiple` (e.g. the model's 2^S), which must leave at least one multiple.

  Args:
    pixels: [H, W, ...] array.
    size: side of the crop in pixels, or (height, width); 0: the whole side.
    multiple: both output sides are multiples of this.
  Returns:
    [h, w, ...] view with h = min(H, size) and w = min(W, size) rounded down to `multiple`.
  Raises:
    ValueError: if a side is shorter than `multiple`.
  """
  h, w = pixels.shape[:2]
  size_h, size_w = (size, size) if isinstance(size, int) else size
  th = min(h, size_h) if size_h > 0 else h
  tw = min(w, size_w) if size_w > 0 else w
  th, tw = th // multiple * multiple, tw // multiple * multiple
  if th == 0 or tw == 0:
    raise ValueError(f"image of {h}x{w} is smaller than {multiple} pixels")
  top, left = (h - th) // 2, (w - tw) // 2
  return pixels[top:top + th, left:left + tw]


def pad_to_multiple(x: np.ndarray, factor: int) -> Tuple[np.ndarray, Tuple[int, int]]:
  """Edge-replication padding at the bottom and right to multiples of `factor`.

  Replicated borders are cheap to code (the model predicts them well), unlike zeros.

  Args:
    x: [H, W, ...] array.
    factor: the multiple (2^S for L3C).
  Returns:
    (padded [H', W', ...], (pad_h, pad_w)) with H' = H + pad_h a multiple of factor.
  """
  h, w = x.shape[:2]
  pad_h, pad_w = -h % factor, -w % factor
  if pad_h or pad_w:
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (x.ndim - 2)
    x = np.pad(x, widths, mode="edge")
  return x, (pad_h, pad_w)


def padded_size(n: int, factor: int) -> int:
  """n rounded up to a multiple of factor."""
  return n + (-n % factor)
