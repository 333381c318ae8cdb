"""Embedded classical streams (coding.embedded), method choice and metadata round trips."""

import dataclasses
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import l3c_jax
from l3c_jax import model_io
from l3c_jax.coding import bitstream
from l3c_jax.coding import codec
from l3c_jax.coding import embedded
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images

import photo


@pytest.fixture(scope="module")
def model(tiny_config, tiny_params):
  return model_io.Model(tiny_config, tiny_params)


def _same(a: images.ImageData, b: images.ImageData):
  assert (a.mode, a.palette, a.transparency, a.metadata) == (
      b.mode, b.palette, b.transparency, b.metadata)
  np.testing.assert_array_equal(a.pixels, b.pixels)


def _palette_photo(colors: int = 64) -> images.ImageData:
  """A photo quantized to `colors` palette entries (what a palette PNG of a photo holds)."""
  rgb = Image.fromarray(photo.photo(150, 128))
  return images.from_pil(rgb.quantize(colors, dither=Image.Dither.FLOYDSTEINBERG))


def _cases(gen):
  few = gen.integers(0, 6, (40, 52)).astype(np.uint8)
  colors = gen.integers(0, 256, (6, 4)).astype(np.uint8)
  rgba = colors[few]
  rgba[..., 3][few == 0] = 0  # fully transparent pixels keep their colour (WebP `exact`)
  return {
      "RGB": images.ImageData(np.ascontiguousarray(rgba[..., :3]), "RGB"),
      "RGBA": images.ImageData(rgba, "RGBA"),
      "L": images.ImageData(few * 40, "L"),
      "LA": images.ImageData(np.stack([few * 40, 255 - few], 2), "LA"),
      "1": images.ImageData((few > 2).astype(np.uint8) * 255, "1"),
      "P": images.ImageData(few, "P", bytes(colors[:, :3].reshape(-1)), 2),
  }


@pytest.mark.parametrize("method", ["png", "webp"])
def test_embedded_methods_round_trip_every_mode(model, np_rng, method):
  for mode, image in _cases(np_rng).items():
    data, stats = codec.encode(image, model, method=method)
    assert stats.method == {"png": bitstream.METHOD_PNG, "webp": bitstream.METHOD_WEBP}[method]
    back, dstats = codec.decode(data, None)  # no model needed for embedded streams
    _same(back, image)
    assert dstats.method == stats.method, mode


def test_webp_refuses_a_palette_whose_colours_do_not_identify_indices(model):
  dup = images.ImageData(np.array([[0, 1]], np.uint8), "P", bytes([1, 2, 3, 1, 2, 3]), None)
  with pytest.raises(CodecError, match="cannot hold this image"):
    codec.encode(dup, model, method="webp")
  data, stats = codec.encode(dup, model)  # auto falls back to PNG
  assert stats.method == bitstream.METHOD_PNG
  _same(codec.decode(data, model)[0], dup)


def test_auto_codes_a_palette_photo_below_its_png_without_the_model(model, monkeypatch):
  """The issue's case: a 64-colour palette photo coded by the model cost 3.4x its PNG."""
  image = _palette_photo(64)
  png9 = images.png_bytes(image, compress_level=9)
  monkeypatch.setattr(codec, "_encode_model", None)  # must not be called
  data, stats = codec.encode(image, model)
  assert len(data) < len(png9)
  assert stats.method in (bitstream.METHOD_PNG, bitstream.METHOD_WEBP)
  _same(codec.decode(data, model)[0], image)


@pytest.mark.slow
def test_auto_is_never_larger_than_png_or_the_model(model, np_rng):
  smooth = photo.photo(48, 40)
  noise = np_rng.integers(0, 256, (24, 40, 3)).astype(np.uint8)
  for pixels in (smooth, noise):
    image = images.from_array(pixels)
    png9 = embedded.encode(image, bitstream.METHOD_PNG)
    data, stats = codec.encode(image, model)
    overhead = bitstream.header_size(bitstream.unpack(data)[0])
    assert len(data) <= len(png9) + overhead
    model_only, _ = codec.encode(image, model, method="model")
    assert len(data) <= len(model_only)
    _same(codec.decode(data, model)[0], image)


def test_embedded_decoding_is_bounded_by_the_stream_length(model, np_rng):
  image = _cases(np_rng)["RGB"]
  data, _ = codec.encode(image, model, method="png")
  header, streams = bitstream.unpack(data)
  # A tiny stream may not claim a huge image: refused before Pillow decompresses anything.
  forged = bitstream.pack(dataclasses.replace(header, height=40000, width=40000), streams)
  with pytest.raises(CodecError, match="image size does not match the data"):
    codec.decode(forged, None)
  # A size other than the stream's own is refused before decoding pixels.
  forged = bitstream.pack(dataclasses.replace(header, height=39), streams)
  with pytest.raises(CodecError, match="embedded PNG of 52x40 pixels, header says 52x39"):
    codec.decode(forged, None)
  # The embedded PNG's mode must be the header's.
  forged = bitstream.pack(dataclasses.replace(header, mode="RGBA"), streams)
  with pytest.raises(CodecError, match="embedded PNG of mode RGB"):
    codec.decode(forged, None)
  with pytest.raises(CodecError, match="corrupt data"):
    codec.decode(bitstream.pack(header, [streams[0][:-30]]), None)
  with pytest.raises(CodecError, match="fails its checksum"):
    codec.decode(bitstream.pack(dataclasses.replace(header, metadata=((b"tEXt", b"a\0b"),)),
                                streams), None)


@pytest.mark.slow
def test_model_coded_files_still_need_their_model(model, np_rng):
  data, _ = codec.encode(images.from_array(photo.photo(16, 16)), model, method="model")
  with pytest.raises(CodecError, match="give the model that encoded it"):
    codec.decode(data, None)


# ---------------------------------------------------------------------------------------------
# Metadata.


def _icc() -> bytes:
  from PIL import ImageCms  # pylint: disable=g-import-not-at-top
  return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _png_with_metadata(tmp_path):
  info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
  info.add_text("Title", "a photo")
  info.add_itxt("Description", "ünïcode", lang="de", tkey="Beschreibung", zip=True)
  info.add_text("Comment", "compressed " * 20, zip=True)
  path = tmp_path / "meta.png"
  Image.fromarray(photo.photo(40, 32)).save(path, pnginfo=info, icc_profile=_icc(),
                                            dpi=(300, 300))
  return path


@pytest.mark.slow
def test_png_metadata_round_trips_through_a_file(model, tmp_path):
  path = _png_with_metadata(tmp_path)
  image = images.read_image(path)
  kinds = [k for k, _ in image.metadata]
  assert {b"iCCP", b"tEXt", b"iTXt", b"zTXt", b"pHYs"} <= set(kinds)
  back, _ = codec.decode(l3c_jax.compress(str(path), model=model), model)
  assert back.metadata == image.metadata
  out = Image.open(io.BytesIO(images.png_bytes(back)))
  src = Image.open(path)
  assert out.info["icc_profile"] == src.info["icc_profile"]
  assert out.text == src.text
  assert out.info["dpi"] == pytest.approx(src.info["dpi"], abs=0.01)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(src))
  # Stripped on request.
  stripped, _ = codec.decode(l3c_jax.compress(str(path), model=model, metadata=False), model)
  assert stripped.metadata == ()
  assert "icc_profile" not in Image.open(io.BytesIO(images.png_bytes(stripped))).info


def test_exif_rotated_jpeg_keeps_its_orientation_and_profile(model, tmp_path):
  exif = Image.Exif()
  exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
  exif[0x010F] = "l3c-jax test camera"
  path = tmp_path / "rotated.jpg"
  Image.fromarray(photo.photo(40, 24)).save(path, quality=95, exif=exif, icc_profile=_icc())
  image = images.read_image(path)
  back, _ = codec.decode(l3c_jax.compress(str(path), model=model), model)
  out = Image.open(io.BytesIO(images.png_bytes(back)))
  assert out.getexif()[0x0112] == 6
  assert out.getexif()[0x010F] == "l3c-jax test camera"
  assert out.info["icc_profile"] == Image.open(path).info["icc_profile"]
  np.testing.assert_array_equal(np.asarray(out), image.pixels)
  # What a viewer shows: the rotated photo, as for the JPEG.
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top
  assert ImageOps.exif_transpose(out).size == out.size[::-1]


def test_png_chunk_parser_and_writer_agree():
  data = images.ImageData(photo.photo(9, 7), "RGB", metadata=(
      (b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\x00"), (b"tIME", bytes(7))))
  png = images.png_bytes(data)
  chunks = images.png_chunks(png)
  assert [k for k, _ in chunks][:4] == [b"IHDR", b"gAMA", b"sRGB", b"tIME"]
  for kind, body in chunks:  # every chunk's CRC is valid
    pos = png.index(kind + body)
    (crc,) = struct.unpack_from(">I", png, pos + 4 + len(body))
    assert crc == zlib.crc32(kind + body)
  assert images.read_image(io.BytesIO(png)).metadata == data.metadata
  assert Image.open(io.BytesIO(png)).info["gamma"] == pytest.approx(0.45455)
  with pytest.raises(images.ImageError, match="metadata must be"):
    images.ImageData(photo.photo(2, 2), "RGB", metadata=((b"tEXtX", b""),))
