"""Tests for l3c_jax/evaluation/classical.py: lossless round trips, bpsp arithmetic, loading."""

import sys
import types

import numpy as np
import pytest
from PIL import Image

from l3c_jax.evaluation import classical


def _synthetic_image(h=24, w=40, seed=0):
  """Smooth gradient + noise: compressible but not trivial, odd-ish size."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=-1)
  return np.clip(base + rng.integers(-8, 9, size=(h, w, 3)), 0, 255).astype(np.uint8)


def _available_or_skip(codec):
  pytest.importorskip("imagecodecs")
  available, notes = classical.available_codecs([codec])
  if not available:
    pytest.skip(notes[codec])


@pytest.mark.parametrize("codec", classical.CODECS)
def test_code_image_roundtrip_is_lossless_and_counts_file_bytes(codec):
  _available_or_skip(codec)
  image = _synthetic_image()
  res = classical.code_image(image, codec)
  assert res.codec == codec
  assert res.num_subpixels == image.size
  # Noisy content cannot be coded in a handful of bytes, nor should it exceed raw size by much.
  assert 50 < res.num_bytes < image.size + 1024
  assert res.bpsp == pytest.approx(8 * res.num_bytes / image.size)
  assert res.encode_s >= 0 and res.decode_s >= 0


def test_code_image_raises_when_decode_is_not_bit_exact(monkeypatch):
  pytest.importorskip("imagecodecs")
  image = _synthetic_image()

  def lossy_functions(key):
    del key
    return (lambda a: a.tobytes(),
            lambda b: np.frombuffer(b, np.uint8).reshape(image.shape) ^ np.uint8(1))

  monkeypatch.setattr(classical, "_codec_functions", lossy_functions)
  with pytest.raises(classical.LosslessMismatchError):
    classical.code_image(image, "png")


def test_code_image_rejects_non_uint8_or_non_rgb_input():
  with pytest.raises(ValueError):
    classical.code_image(np.zeros((4, 4, 3), np.float32), "png")
  with pytest.raises(ValueError):
    classical.code_image(np.zeros((4, 4), np.uint8), "png")


def test_bits_per_subpixel_is_eight_bits_per_byte_over_subpixels():
  assert classical.bits_per_subpixel(3, 3) == 8.0
  assert classical.bits_per_subpixel(768 * 512 * 3 // 2, 768 * 512 * 3) == 4.0
  res = classical.CodecResult("png", num_bytes=150, encode_s=0.0, decode_s=0.0, num_subpixels=400)
  assert res.bpsp == 3.0
  with pytest.raises(ValueError):
    classical.bits_per_subpixel(10, 0)


def test_parse_codecs_accepts_aliases_all_and_none():
  assert classical.parse_codecs("png, jxl,JPEG2K,webp,png") == ["png", "jpegxl", "jpeg2000", "webp"]
  assert classical.parse_codecs("all") == list(classical.CODECS)
  assert classical.parse_codecs("none") == []
  assert classical.parse_codecs("") == []
  with pytest.raises(ValueError):
    classical.parse_codecs("png,gif")


def test_available_codecs_skips_codecs_missing_from_the_build(monkeypatch):
  fake = types.SimpleNamespace(
      __version__="0.0-test",
      PNG=types.SimpleNamespace(available=True),
      WEBP=types.SimpleNamespace(available=False),
      JPEG2K=types.SimpleNamespace(available=True))  # no JPEGXL class at all
  monkeypatch.setattr(classical, "import_imagecodecs", lambda: fake)
  available, notes = classical.available_codecs(classical.CODECS)
  assert available == ["png", "jpeg2000"]
  assert set(notes) == {"webp", "jpegxl"}
  assert "not available" in notes["webp"]


def test_import_imagecodecs_missing_tells_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "imagecodecs", None)  # makes `import imagecodecs` fail
  with pytest.raises(ImportError, match=r"pip install '\.\[eval\]'"):
    classical.import_imagecodecs()


def test_load_rgb_replicates_grayscale_into_three_channels(tmp_path):
  gray = (np.arange(6 * 5, dtype=np.uint8) * 7).reshape(6, 5)
  Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
  image, mode = classical.load_rgb(str(tmp_path / "g.png"))
  assert mode == "L"
  assert image.shape == (6, 5, 3) and image.dtype == np.uint8
  for c in range(3):
    np.testing.assert_array_equal(image[..., c], gray)


def test_load_rgb_rejects_16_bit_images(tmp_path):
  Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(tmp_path / "d.png")
  with pytest.raises(ValueError, match="not 8-bit"):
    classical.load_rgb(str(tmp_path / "d.png"))


def test_list_images_sorts_naturally_and_limits(tmp_path):
  for name in ("10.png", "2.png", "1.png", "notes.txt", "b.PNG"):
    (tmp_path / name).write_bytes(b"")
  names = [p.rsplit("/", 1)[-1] for p in classical.list_images(str(tmp_path))]
  assert names == ["1.png", "2.png", "10.png", "b.PNG"]
  assert len(classical.list_images(str(tmp_path), max_images=2)) == 2
