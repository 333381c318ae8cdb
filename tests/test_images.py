"""Image reading / writing for the codec (data.images): modes, refusals, padding, tiles."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from l3c_jax.data import images
from l3c_jax.data.images import ImageError


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
  return (struct.pack(">I", len(payload)) + kind + payload
          + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def _png16(arr: np.ndarray) -> bytes:
  """A minimal 16-bit PNG (Pillow cannot write 16-bit RGB) of a uint16 [H, W, C] array."""
  h, w, c = arr.shape
  color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
  raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
  return (b"\x89PNG\r\n\x1a\n"
          + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
          + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_images_refuses_16_bit_pngs(np_rng, channels):
  arr = np_rng.integers(0, 65536, (3, 5, channels)).astype(np.uint16)
  with pytest.raises(ImageError, match="8 bits per sample"):
    images.read_image(io.BytesIO(_png16(arr)))


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_images_refuses_deep_pillow_modes(mode):
  with pytest.raises(ImageError, match="8 bits per sample"):
    images.from_pil(Image.new(mode, (4, 3)))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_images_refuses_deep_arrays(dtype):
  with pytest.raises(ImageError, match="8 bits per sample"):
    images.from_array(np.zeros((4, 3, 3), dtype))


def test_images_refuses_unsupported_modes_and_shapes():
  with pytest.raises(ImageError, match="unsupported image mode 'CMYK'"):
    images.from_pil(Image.new("CMYK", (4, 3)))
  for shape in ((4, 3, 5), (10,), (), (2, 2, 2, 2)):  # 1-D raised IndexError before
    with pytest.raises(ImageError, match="cannot interpret"):
      images.from_array(np.zeros(shape, np.uint8))
  with pytest.raises(ImageError, match="empty image"):
    images.from_array(np.zeros((0, 3, 3), np.uint8))
  with pytest.raises(ImageError, match="cannot read image"):
    images.read_image(io.BytesIO(b"not an image"))


def test_images_array_shapes_map_to_modes():
  z = lambda *s: np.zeros(s, np.uint8)
  assert images.from_array(z(2, 3)).mode == "L"
  assert images.from_array(z(2, 3, 1)).mode == "L"
  assert images.from_array(z(2, 3, 2)).mode == "LA"
  assert images.from_array(z(2, 3, 3)).mode == "RGB"
  assert images.from_array(z(2, 3, 4)).mode == "RGBA"


def _roundtrip_png(data: images.ImageData) -> images.ImageData:
  return images.read_image(io.BytesIO(images.png_bytes(data)))


def test_images_png_roundtrip_keeps_palette_transparency_and_bilevel(np_rng):
  idx = np_rng.integers(0, 4, (5, 7)).astype(np.uint8)
  pal = bytes(np_rng.integers(0, 256, 12).astype(np.uint8))
  for trans in (None, 2, bytes([0, 128, 255, 9])):
    p = images.ImageData(idx, "P", pal, trans)
    back = _roundtrip_png(p)
    assert back.mode == "P" and back.palette[:12] == pal and back.transparency == trans
    np.testing.assert_array_equal(back.pixels, idx)
  bilevel = images.ImageData((idx % 2 * 255).astype(np.uint8), "1")
  back = _roundtrip_png(bilevel)
  assert back.mode == "1"
  np.testing.assert_array_equal(back.pixels, bilevel.pixels)
  la = images.ImageData(np_rng.integers(0, 256, (5, 7, 2)).astype(np.uint8), "LA")
  np.testing.assert_array_equal(_roundtrip_png(la).pixels, la.pixels)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 13), (7, 9, 3), (8, 8, 3), (13, 19, 2)])
def test_images_pad_replicates_edges_to_a_multiple(np_rng, shape):
  x = np_rng.integers(0, 256, shape).astype(np.uint8)
  padded, (ph, pw) = images.pad_to_multiple(x, 8)
  assert padded.shape[:2] == (images.padded_size(shape[0], 8), images.padded_size(shape[1], 8))
  assert padded.shape[0] % 8 == 0 and padded.shape[1] % 8 == 0
  assert (ph, pw) == (padded.shape[0] - shape[0], padded.shape[1] - shape[1])
  np.testing.assert_array_equal(padded[:shape[0], :shape[1]], x)
  np.testing.assert_array_equal(padded[shape[0]:, :shape[1]],
                                np.broadcast_to(x[-1:], padded[shape[0]:, :shape[1]].shape))
  np.testing.assert_array_equal(padded[:, shape[1]:],
                                np.broadcast_to(padded[:, shape[1] - 1:shape[1]],
                                                padded[:, shape[1]:].shape))


@pytest.mark.parametrize("shape,size,multiple,want", [
    ((100, 80, 3), 32, 8, (32, 32)), ((30, 100, 3), 64, 8, (24, 64)),
    ((37, 45, 3), 0, 8, (32, 40)), ((16, 16), 16, 1, (16, 16)),
    ((100, 80, 3), (24, 48), 1, (24, 48)), ((30, 100, 3), (0, 17), 8, (24, 16))])
def test_center_crop_sizes(shape, size, multiple, want):
  px = np.arange(int(np.prod(shape))).reshape(shape)
  out = images.center_crop(px, size, multiple)
  assert out.shape[:2] == want
  top, left = (shape[0] - want[0]) // 2, (shape[1] - want[1]) // 2
  np.testing.assert_array_equal(out, px[top:top + want[0], left:left + want[1]])


def test_center_crop_rejects_tiny_images():
  with pytest.raises(ValueError):
    images.center_crop(np.zeros((5, 30, 3)), 16, 8)


def test_list_images_natural_order_files_and_limits(tmp_path):
  for name in ("10.png", "2.png", "1.PNG", "notes.txt"):
    (tmp_path / name).write_bytes(b"")
  (tmp_path / "sub.png").mkdir()
  got = [os.path.basename(p) for p in images.list_images(str(tmp_path))]
  assert got == ["1.PNG", "2.png", "10.png"]
  assert len(images.list_images([str(tmp_path)], max_images=2)) == 2
  assert images.list_images([str(tmp_path / "notes.txt")]) == [str(tmp_path / "notes.txt")]
  with pytest.raises(FileNotFoundError):
    images.list_images(str(tmp_path / "missing"))


def test_to_rgb_replicates_gray_and_looks_up_palettes():
  gray = images.from_array(np.arange(64, dtype=np.uint8).reshape(8, 8))
  rgb = images.to_rgb(gray)
  assert rgb.shape == (8, 8, 3) and (rgb == gray.pixels[..., None]).all()
  palette = images.from_pil(images.to_pil(images.from_array(rgb)).quantize(4))
  colours = np.frombuffer(palette.palette, np.uint8).reshape(-1, 3)
  np.testing.assert_array_equal(images.to_rgb(palette), colours[palette.pixels])


def test_list_images_recursive_walks_sub_directories_in_natural_order(tmp_path):
  for rel in ("b/10.jpg", "b/2.JPEG", "a.png", "b/c/1.webp", "b/c/skip.txt"):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(b"")
  got = [os.path.relpath(p, tmp_path) for p in images.list_images(tmp_path, recursive=True)]
  assert got == ["a.png", "b/2.JPEG", "b/10.jpg", "b/c/1.webp"]
  assert [os.path.basename(p) for p in images.list_images(tmp_path)] == ["a.png"]


def _image_of_mode(np_rng, mode: str) -> images.ImageData:
  """A small random image of `mode`; 'P+index' / 'P+alpha': palette with a transparent index /
  per-index alpha."""
  shape = (5, 7)
  if mode in ("RGB", "RGBA", "LA"):
    return images.ImageData(np_rng.integers(0, 256, shape + ({"RGB": 3, "RGBA": 4, "LA": 2}[
        mode],)).astype(np.uint8), mode)
  if mode == "L":
    return images.ImageData(np_rng.integers(0, 256, shape).astype(np.uint8), "L")
  if mode == "1":
    return images.ImageData((np_rng.integers(0, 2, shape) * 255).astype(np.uint8), "1")
  pal = bytes(np_rng.integers(0, 256, 30).astype(np.uint8))
  trans = {"P": None, "P+index": 3, "P+alpha": bytes(range(0, 250, 25))}[mode]
  return images.ImageData(np_rng.integers(0, 10, shape).astype(np.uint8), "P", pal, trans)


_ALL_MODES = ("RGB", "RGBA", "L", "LA", "1", "P", "P+index", "P+alpha")
# What each output extension stores exactly (every other pair must be refused).
_EXACT = {
    ".png": _ALL_MODES,
    ".webp": ("RGB", "RGBA"),
    ".tif": ("RGB", "RGBA", "L", "LA", "1"),
    ".tiff": ("RGB", "RGBA", "L", "LA", "1"),
    ".bmp": ("RGB", "L", "1", "P"),
    ".ppm": ("RGB",), ".pgm": ("L",), ".pbm": ("1",), ".pnm": ("RGB", "L", "1"),
}


@pytest.mark.parametrize("ext", sorted(_EXACT))
def test_encode_image_file_reads_back_exactly_or_refuses_the_mode(np_rng, ext):
  fmt = images.output_format("out" + ext.upper())  # extensions are case-insensitive
  for mode in _ALL_MODES:
    image = _image_of_mode(np_rng, mode)
    if mode not in _EXACT[ext]:
      with pytest.raises(ImageError, match="cannot store .* exactly; use .png"):
        images.encode_image_file(image, fmt, ext)
      continue
    data = images.encode_image_file(image, fmt, ext)
    with Image.open(io.BytesIO(data)) as img:
      assert img.format == fmt, (ext, mode)
    back = images.read_image(io.BytesIO(data))
    assert (back.mode, back.transparency) == (image.mode, image.transparency), (ext, mode)
    assert back.palette == image.palette or back.palette[:len(image.palette)] == image.palette
    np.testing.assert_array_equal(back.pixels, image.pixels, err_msg=f"{ext} {mode}")
  assert images.encode_image_file(image, "PNG") == images.png_bytes(image)


def test_output_format_refuses_lossy_and_unknown_extensions():
  assert images.output_format("a") == "PNG" and images.output_format("a.b/c.Webp") == "WEBP"
  for name in ("a.jpg", "a.JPEG", "a.gif", "a.jxl"):
    with pytest.raises(ImageError, match="lossy"):
      images.output_format(name)
  with pytest.raises(ImageError, match="unknown output extension '.xyz'"):
    images.output_format("a.xyz")


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG that declares width x height but holds (almost) no pixel data."""
  return (b"\x89PNG\r\n\x1a\n"
          + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
          + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10)) + _png_chunk(b"IEND", b""))


def test_large_images_are_bounded_by_our_limit_not_pillows(recwarn):
  from l3c_jax.coding import bitstream  # pylint: disable=import-outside-toplevel
  assert (images.MAX_SIDE, images.MAX_PIXELS) == (bitstream.MAX_SIDE, bitstream.MAX_PIXELS)
  # 144 M pixels: above Pillow's warning limit (89 M), below ours: no warning, only the
  # truncation of this header-only file.
  with pytest.raises(ImageError, match="truncated"):
    images.read_image(io.BytesIO(_png_header_only(12000, 12000)))
  assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
  assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's setting is restored for others
  for w, h in ((50000, 50000), (images.MAX_SIDE + 1, 1)):
    with pytest.raises(ImageError, match=f"image of {w}x{h} pixels is too large"):
      images.read_image(io.BytesIO(_png_header_only(w, h)))
