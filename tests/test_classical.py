"""Tests for l3c_jax/evaluation/classical.py: lossless round trips, what each codec is given."""

import sys
import types

import numpy as np
import pytest

from l3c_jax.data import images
from l3c_jax.evaluation import classical


def _synthetic_image(h=24, w=40, seed=0):
  """Smooth gradient + noise: compressible but not trivial, odd-ish size."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=-1)
  return images.from_array(
      np.clip(base + rng.integers(-8, 9, size=(h, w, 3)), 0, 255).astype(np.uint8))


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
  # Noisy content cannot be coded in a handful of bytes, nor should it exceed raw size by much.
  assert 50 < res.num_bytes < image.num_subpixels + 1024
  assert res.encode_s >= 0 and res.decode_s >= 0


@pytest.mark.parametrize("codec", classical.CODECS)
@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA"])
def test_every_codec_codes_gray_alpha_and_palette_images_losslessly(codec, mode):
  _available_or_skip(codec)
  rgb = _synthetic_image(12, 10)
  if mode == "P":
    image = images.from_pil(images.to_pil(rgb).quantize(7))
  else:
    image = images.from_pil(images.to_pil(rgb).convert(mode))
  assert classical.code_image(image, codec).num_bytes > 0


def test_codec_input_keeps_the_stored_mode_where_the_codec_supports_it():
  rgb = _synthetic_image(6, 5)
  gray = images.from_pil(images.to_pil(rgb).convert("L"))
  gray_alpha = images.from_pil(images.to_pil(rgb).convert("LA"))
  palette = images.from_pil(images.to_pil(rgb).quantize(5))
  assert classical.codec_input(gray, "png").shape == (6, 5)
  assert classical.codec_input(gray, "jxl").shape == (6, 5)
  assert classical.codec_input(gray_alpha, "jpeg2000").shape == (6, 5, 2)
  # WebP has no gray mode: gray is replicated, alpha kept.
  webp_gray = classical.codec_input(gray, "webp")
  assert webp_gray.shape == (6, 5, 3) and (webp_gray == gray.pixels[..., None]).all()
  webp_la = classical.codec_input(gray_alpha, "webp")
  assert webp_la.shape == (6, 5, 4) and (webp_la[..., 3] == gray_alpha.pixels[..., 1]).all()
  # Palette images are given as their colours.
  assert (classical.codec_input(palette, "png") == images.to_rgb(palette)).all()


def test_code_image_raises_when_decode_is_not_bit_exact(monkeypatch):
  pytest.importorskip("imagecodecs")
  image = _synthetic_image()

  def lossy_functions(key):
    del key
    return (lambda a: a.tobytes(),
            lambda b: np.frombuffer(b, np.uint8).reshape(image.pixels.shape) ^ np.uint8(1))

  monkeypatch.setattr(classical, "_codec_functions", lossy_functions)
  with pytest.raises(classical.LosslessMismatchError):
    classical.code_image(image, "png")


def test_parse_codecs_accepts_aliases_all_and_none():
  assert classical.parse_codecs("png, jxl,JPEG2K,webp,png") == ["png", "jpegxl", "jpeg2000", "webp"]
  assert classical.parse_codecs("all") == list(classical.CODECS)
  assert classical.parse_codecs("jxl7,JPEG-XL-9") == ["jpegxl7", "jpegxl"]
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
  assert set(notes) == {"webp", "jpegxl", "jpegxl7"}
  assert "not available" in notes["webp"]


def test_import_imagecodecs_missing_tells_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "imagecodecs", None)  # makes `import imagecodecs` fail
  with pytest.raises(ImportError, match=r"pip install '\.\[eval\]'"):
    classical.import_imagecodecs()


def test_jpeg_xl_effort_7_and_9_are_both_measured(monkeypatch):
  _available_or_skip("jpegxl")
  import imagecodecs  # pylint: disable=import-outside-toplevel
  efforts = []
  real = imagecodecs.jpegxl_encode

  def spy(*args, **kwargs):
    efforts.append(kwargs["effort"])
    return real(*args, **kwargs)
  monkeypatch.setattr(imagecodecs, "jpegxl_encode", spy)
  image = _synthetic_image()
  for codec in ("jpegxl7", "jpegxl"):
    classical.code_image(image, codec)
  assert efforts == [7, 9]
  assert classical.CODEC_NAMES["jpegxl7"] != classical.CODEC_NAMES["jpegxl"]
