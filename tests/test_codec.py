"""The codec end to end (coding.codec, api, model_io) with the tiny random model.

Image sizes are chosen so that few padded shapes are compiled: 7x9 (-> 8x16) and 13x19
(-> 16x24) are reused by several tests.
"""

import dataclasses
import functools
import json
import os
import pathlib
import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import l3c_jax
from l3c_jax import model_io
from l3c_jax.coding import bitstream
from l3c_jax.coding import codec
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images
from l3c_jax.models.config import (RGBBicubicConfig, RGBBicubicPhasedConfig,
                                   RGBInterlacedConfig)
from l3c_jax.train import step as step_lib

from conftest import random_params

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


@pytest.fixture(scope="module")
def model(tiny_config, tiny_params):
  return model_io.Model(tiny_config, tiny_params)


def _encode(image, model, **kw):
  """codec.encode with the model (the tests here are about the model's coding)."""
  return codec.encode(image, model, **{"method": "model", **kw})


def _roundtrip(model, image: images.ImageData, **kw) -> bytes:
  """Codes with the model (unless `method` says otherwise), decodes, checks, returns the file."""
  data, _ = codec.encode(image, model, **{"method": "model", **kw})
  back, _ = codec.decode(data, model)
  assert back.mode == image.mode
  assert back.palette == image.palette and back.transparency == image.transparency
  np.testing.assert_array_equal(back.pixels, image.pixels)
  return data


# (1, 37) and (13, 19) compile two more shapes (~6 s each here): slow.
@pytest.mark.parametrize("shape", [(1, 1), pytest.param((1, 37), marks=pytest.mark.slow), (7, 9),
                                   pytest.param((13, 19), marks=pytest.mark.slow)])
def test_codec_roundtrip_is_bit_exact_for_odd_sizes(model, np_rng, shape):
  x = np_rng.integers(0, 256, shape + (3,)).astype(np.uint8)
  _roundtrip(model, images.from_array(x))


@pytest.mark.parametrize("value", [0, 128, 255])
def test_codec_roundtrip_constant_images(model, value):
  _roundtrip(model, images.from_array(np.full((13, 19, 3), value, np.uint8)))


def test_codec_roundtrip_smooth_image_is_cheaper_than_noise(model, np_rng):
  yy, xx = np.mgrid[0:13, 0:19]
  smooth = np.stack([yy * 9, xx * 6, (yy + xx) * 4], -1).astype(np.uint8)
  noise = np_rng.integers(0, 256, (13, 19, 3)).astype(np.uint8)
  assert len(_roundtrip(model, images.from_array(smooth))) < len(
      _roundtrip(model, images.from_array(noise)))


def test_codec_roundtrip_every_mode(model, np_rng):
  rnd = lambda *s: np_rng.integers(0, 256, s).astype(np.uint8)
  cases = {
      "L": images.ImageData(rnd(7, 9), "L"),
      "LA": images.ImageData(rnd(7, 9, 2), "LA"),
      "RGBA": images.ImageData(rnd(7, 9, 4), "RGBA"),
      "RGBA opaque": images.ImageData(
          np.concatenate([rnd(7, 9, 3), np.full((7, 9, 1), 255, np.uint8)], 2), "RGBA"),
      "LA constant alpha": images.ImageData(
          np.stack([rnd(7, 9), np.full((7, 9), 17, np.uint8)], 2), "LA"),
      "1": images.ImageData((rnd(7, 9) > 127).astype(np.uint8) * 255, "1"),
      "P": images.ImageData(rnd(7, 9) % 5, "P", bytes(rnd(15)), None),
      "P transparency": images.ImageData(rnd(7, 9) % 5, "P", bytes(rnd(15)), bytes(rnd(5))),
      "P transparent index": images.ImageData(rnd(7, 9) % 5, "P", bytes(rnd(15)), 3),
      # Entries 1 and 3 share a colour and both are used: the index plane is coded instead.
      "P duplicate colours": images.ImageData(
          np.arange(63, dtype=np.uint8).reshape(7, 9) % 4, "P",
          bytes([1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9, 9]), None),
  }
  sizes = {}
  for name, image in cases.items():
    sizes[name] = len(_roundtrip(model, image))
  # A constant alpha plane costs nothing: opaque RGBA is about as small as... RGB data alone.
  rgb_only = len(_roundtrip(model, images.ImageData(cases["RGBA opaque"].pixels[..., :3],
                                                    "RGB")))
  assert sizes["RGBA opaque"] - rgb_only < 8
  assert sizes["RGBA"] > sizes["RGBA opaque"] + 100


def test_codec_palette_components(np_rng):
  unique = images.ImageData(np.zeros((2, 2), np.uint8), "P", bytes([1, 2, 3, 1, 2, 3]), None)
  assert codec._components(unique)[0][0] == bitstream.COMPONENT_RGB  # duplicate is unused
  dup = images.ImageData(np.array([[0, 1]], np.uint8), "P", bytes([1, 2, 3, 1, 2, 3]), None)
  assert codec._components(dup)[0][0] == bitstream.COMPONENT_GRAY


@pytest.mark.slow
def test_codec_tiles_roundtrip_and_count(model, np_rng):
  # 45x70 in 32-pixel tiles: edge tiles of 13 and 6 pixels, the padded tile shapes of
  # tests/test_codec_speed.py's tiled images (the same tiny model), so they compile once.
  x = np_rng.integers(0, 256, (45, 70, 3)).astype(np.uint8)
  data = _roundtrip(model, images.from_array(x), tile_size=32)
  header, streams = bitstream.unpack(data)
  assert header.tile_size == 32
  assert len(header.tile_crc32s) == 6
  assert len(streams) == 6 * (model.config.num_scales + 3)  # 2x3 tiles, 3 latents + R, G, B


def test_codec_rejects_a_different_model(model, tiny_config, np_rng):
  data, _ = _encode(images.from_array(np_rng.integers(0, 256, (7, 9, 3)).astype(
      np.uint8)), model)
  other = model_io.Model(tiny_config, random_params(tiny_config, seed=1))
  with pytest.raises(CodecError, match="different model"):
    codec.decode(data, other)


def _forge(data: bytes, **changes) -> bytes:
  """Re-packs a file with header fields / streams changed and all checksums recomputed."""
  header, streams = bitstream.unpack(data)
  streams = changes.pop("streams", streams)
  return bitstream.pack(dataclasses.replace(header, **changes), streams)


def test_codec_refuses_a_forged_huge_tile_grid_before_listing_tiles(model, np_rng):
  """A 142-byte-class file declaring 46340 x 46340 pixels in 32-pixel tiles (2.1 M tiles) is
  refused from the counts alone, without building the tile list (which took GBs)."""
  data, _ = _encode(images.from_array(np_rng.integers(0, 256, (7, 9, 3)).astype(np.uint8)),
                         model)
  forged = _forge(data, height=46340, width=46340, tile_size=32, pad_h=-46340 % 8,
                  pad_w=-46340 % 8)
  tracemalloc.start()
  try:
    with pytest.raises(CodecError, match="substreams, expected"):
      codec.decode(forged, model)
    _, peak_bytes = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak_bytes < 10 * 2**20  # the tile list alone would take gigabytes


@pytest.mark.slow
def test_codec_refuses_tiles_below_the_minimum_size(model, np_rng):
  x = np_rng.integers(0, 256, (40, 45, 3)).astype(np.uint8)
  with pytest.raises(CodecError, match="below the minimum 32"):
    _encode(images.from_array(x), model, tile_size=16)
  data = _encode(images.from_array(x), model, tile_size=32)[0]
  # A forged 8-pixel tiling (each tile costs a fixed number of network calls) is refused as such.
  with pytest.raises(CodecError, match="tile size 8 is below the minimum"):
    codec.decode(_forge(data, tile_size=8), model)
  # One tile smaller than the minimum is an image smaller than the minimum: fine.
  small = images.from_array(x[:7, :9])
  assert bitstream.unpack(_roundtrip(model, small, tile_size=32))[0].tile_size == 32


def test_codec_refuses_a_forged_file_of_empty_tiles_at_the_first_bad_tile(model, np_rng):
  """A file declaring 2048 x 2048 pixels in 4096 tiles whose substreams (past the first tile's)
  are empty, all checksums recomputed: refused at the first bad tile (its checksum), in well
  under a second and without decoding the rest."""
  x = np_rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
  data = _roundtrip(model, images.from_array(x), tile_size=32)  # also compiles the tile shape
  header, streams = bitstream.unpack(data)
  per_tile = len(streams)
  top_bytes = len(streams[0])
  forged_streams = list(streams) + [bytes(top_bytes)] + [b""] * (per_tile - 1)
  forged_streams += ([bytes(top_bytes)] + [b""] * (per_tile - 1)) * 4094
  forged = _forge(data, height=2048, width=2048, streams=forged_streams,
                  tile_crc32s=header.tile_crc32s * 4096)
  assert len(forged) < 256 * 1024  # the 160 KB class of forged files
  t0 = time.perf_counter()
  with pytest.raises(CodecError, match=r"tile at x=32, y=0 fails its checksum"):
    codec.decode(forged, model)
  assert time.perf_counter() - t0 < 1.0


@pytest.mark.slow
def test_codec_content_checksum_covers_palette_transparency_mode_and_metadata(model, np_rng):
  image = images.ImageData(np_rng.integers(0, 4, (9, 11)).astype(np.uint8), "P",
                           bytes(range(12)), bytes([0, 255, 3, 4]),
                           metadata=((b"tEXt", b"k\0v"),))
  data = _roundtrip(model, image)
  header, _ = bitstream.unpack(data)
  swapped = bytes([3, 4, 5, 0, 1, 2]) + bytes(range(6, 12))  # same colours, other indices
  for change in (dict(palette=swapped), dict(transparency=bytes([1, 255, 3, 4])),
                 dict(transparency=None), dict(metadata=((b"tEXt", b"k\0w"),)),
                 dict(metadata=())):
    with pytest.raises(CodecError, match="fails its checksum"):
      codec.decode(_forge(data, **change), model)
  gray = _roundtrip(model, images.ImageData(np_rng.integers(0, 256, (9, 11)).astype(np.uint8),
                                            "L"))
  with pytest.raises(CodecError, match="fails its checksum"):
    codec.decode(_forge(gray, mode="1"), model)


@pytest.mark.slow
def test_codec_rejects_corrupt_data_even_with_valid_checksums(model, np_rng):
  image = images.from_array(np_rng.integers(0, 256, (13, 19, 3)).astype(np.uint8))
  data, _ = _encode(image, model)
  header, streams = bitstream.unpack(data)
  # Intact checksums but wrong pixels: with exact numerics only a bug or a forgery does that,
  # and the message says so (not "corrupt").
  with pytest.raises(CodecError, match="checksums are intact.*tables differ.*a bug in l3c-jax"):
    codec.decode(_forge(data, content_crc32=header.content_crc32 ^ 1), model)
  rejected = 0
  for i in range(len(streams)):
    bad = [bytearray(s) for s in streams]
    bad[i][len(bad[i]) // 2] ^= 0x5A
    try:
      back, _ = codec.decode(_forge(data, streams=[bytes(s) for s in bad]), model)
    except CodecError:
      rejected += 1
      continue
    np.testing.assert_array_equal(back.pixels, image.pixels)  # never a wrong image
  assert rejected >= len(streams) - 1
  with pytest.raises(CodecError, match="substreams"):
    codec.decode(_forge(data, streams=streams[:-1]), model)
  with pytest.raises(CodecError, match="components"):
    codec.decode(_forge(data, mode="RGBA"), model)
  # A forged size (same tile count) is caught by the size of the uniform top-scale stream.
  with pytest.raises(CodecError, match="does not match the data"):
    codec.decode(_forge(data, height=1000, width=1000, pad_h=0, pad_w=0), model)


def test_codec_rejects_truncated_files(model, np_rng):
  data, _ = _encode(images.from_array(np_rng.integers(0, 256, (7, 9, 3)).astype(
      np.uint8)), model)
  for n in (0, 3, 10, len(data) // 2, len(data) - 1):
    with pytest.raises(CodecError):
      codec.decode(data[:n], model)


def test_codec_stats_account_for_every_bit(model, np_rng):
  image = images.from_array(np_rng.integers(0, 256, (13, 19, 3)).astype(np.uint8))
  data, stats = _encode(image, model, estimate=True)
  assert stats.file_bits == 8 * len(data)
  assert stats.file_bits == stats.header_bits + sum(stats.actual_bits.values())
  assert set(stats.actual_bits) == set(stats.theory_bits) == {"z3", "z2", "z1", "x"}
  assert stats.num_subpixels == 13 * 19 * 3
  assert stats.header_bits == 8 * bitstream.header_size(bitstream.unpack(data)[0])
  _, dstats = codec.decode(data, model)
  assert dstats.actual_bits == stats.actual_bits


# A 512x512 crop (~15 s here): slow. The default suite checks the bound on a real photo with the
# shipped model (tests/test_shipped_model.py) and the accounting here (stats tests).
@pytest.mark.slow
@pytest.mark.data
def test_codec_information_bounds_on_a_photo(tiny_config):
  if not KODAK.is_dir():
    pytest.skip(f"{KODAK} not available")
  # Broad heads keep every symbol far from the 2^-24 tails, where the integer tables (one-count
  # floor per bin) code cheaper than the float model; for such a model, estimate <= written.
  model = model_io.random_model(tiny_config, broad_heads=True)
  photo = images.read_image(KODAK / "kodim23.png")
  image = images.ImageData(np.ascontiguousarray(photo.pixels[:512, 128:640]), "RGB")
  data, stats = _encode(image, model, estimate=True)
  theory = sum(stats.theory_bits.values())
  written = sum(stats.actual_bits.values())
  assert written >= theory
  assert stats.file_bits <= 1.002 * theory + stats.header_bits
  for key, bits in stats.actual_bits.items():  # and scale by scale
    assert bits >= stats.theory_bits[key] - 32, key
  back, _ = codec.decode(data, model)
  np.testing.assert_array_equal(back.pixels, image.pixels)


def test_api_compress_decompress_arrays_and_modes(model, np_rng):
  x = np_rng.integers(0, 256, (7, 9, 3)).astype(np.uint8)
  data = l3c_jax.compress(x, model=model)
  np.testing.assert_array_equal(l3c_jax.decompress(data, model=model), x)
  gray = x[..., 0]
  out = l3c_jax.decompress(l3c_jax.compress(Image.fromarray(gray), model=model), model=model)
  assert out.dtype == np.uint8 and out.shape == (7, 9)
  np.testing.assert_array_equal(out, gray)
  with pytest.raises(images.ImageError, match="8 bits"):
    l3c_jax.compress(x.astype(np.uint16), model=model)


def test_api_compress_accepts_paths_and_keeps_palettes(model, np_rng, tmp_path):
  img = Image.fromarray(np_rng.integers(0, 5, (7, 9)).astype(np.uint8), "P")
  img.putpalette(list(np_rng.integers(0, 256, 15)))
  path = tmp_path / "p.png"
  img.save(path, transparency=2)
  decoded = l3c_jax.api.decompress_image(l3c_jax.compress(str(path), model=model), model=model)
  original = images.read_image(path)
  assert decoded.mode == "P" and decoded.palette == original.palette
  assert decoded.transparency == 2
  np.testing.assert_array_equal(decoded.pixels, np.asarray(img))


def test_model_io_save_load_and_fingerprint(tiny_config, tiny_params, tmp_path):
  model_io.save_model(str(tmp_path / "m"), tiny_config, tiny_params, {"step": 3})
  loaded = model_io.load_model(str(tmp_path / "m"))
  assert loaded.config == tiny_config
  assert loaded.fingerprint == model_io.Model(tiny_config, tiny_params).fingerprint
  assert model_io.read_metadata(str(tmp_path / "m")) == {"step": 3}
  doc = json.loads((tmp_path / "m" / "config.json").read_text())
  assert doc["fingerprint"] == loaded.fingerprint
  assert doc["format"] == "l3c-jax-model/2" and doc["config"]["family"] == "l3c"
  # A training workdir with an exported model/ works too.
  model_io.save_model(str(tmp_path / "work" / "model"), tiny_config, tiny_params)
  assert model_io.load_model(str(tmp_path / "work")).fingerprint == loaded.fingerprint
  # The fingerprint covers weights and config.
  changed = jax.tree_util.tree_map(np.array, tiny_params)
  changed["prob_heads_0"]["out"]["conv"]["bias"][0] += 1e-6
  assert model_io.Model(tiny_config, changed).fingerprint != loaded.fingerprint
  other_cfg = dataclasses.replace(tiny_config, soft_sigma=3.0)
  assert model_io.Model(other_cfg, tiny_params).fingerprint != loaded.fingerprint


def test_model_io_errors_are_one_line(tiny_config, tiny_params, tmp_path):
  with pytest.raises(model_io.ModelError, match="does not exist"):
    model_io.load_model(str(tmp_path / "nope"))
  with pytest.raises(model_io.ModelError, match="no model in"):
    model_io.load_model(str(tmp_path))
  d = tmp_path / "m"
  model_io.save_model(str(d), tiny_config, tiny_params)
  (d / "params.msgpack").write_bytes(b"\x00garbage")
  with pytest.raises(model_io.ModelError, match="params.msgpack"):
    model_io.load_model(str(d))
  (d / "params.msgpack").unlink()
  with pytest.raises(model_io.ModelError, match="missing"):
    model_io.load_model(str(d))
  model_io.save_model(str(d), dataclasses.replace(tiny_config, num_channels=4),
                      random_params(dataclasses.replace(tiny_config, num_channels=4)))
  cfg = json.loads((d / "config.json").read_text())
  cfg["config"]["num_channels"] = 8
  (d / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(model_io.ModelError, match="does not match|has shape"):
    model_io.load_model(str(d))
  (d / "config.json").write_text("{")
  with pytest.raises(model_io.ModelError, match="config.json"):
    model_io.load_model(str(d))
  (d / "config.json").write_text(json.dumps({**cfg, "format": "l3c-jax-model/9"}))
  with pytest.raises(model_io.ModelError,
                     match="format 'l3c-jax-model/9'; this l3c-jax reads l3c-jax-model/1, "
                           "l3c-jax-model/2"):
    model_io.load_model(str(d))


def test_model_io_default_model_missing_is_a_clear_error():
  if os.path.isdir(model_io.DEFAULT_MODEL_DIR):
    pytest.skip("a default model is shipped")
  with pytest.raises(model_io.ModelError, match="no default model"):
    model_io.load_default_model()


@pytest.mark.slow
@pytest.mark.data
def test_codec_default_model_roundtrip_and_bounds_on_a_photo():
  """The shipped (trained) model on a real 512x512 photo: exact, and cost = model's estimate."""
  if not KODAK.is_dir():
    pytest.skip(f"{KODAK} not available")
  try:
    model = model_io.load_default_model()
  except model_io.ModelError:
    pytest.skip("no default model shipped")
  photo = images.read_image(KODAK / "kodim05.png")
  image = images.ImageData(np.ascontiguousarray(photo.pixels[:512, :512]), "RGB")
  data, stats = _encode(image, model, estimate=True)
  theory = sum(stats.theory_bits.values())
  # Written bits may be a little *below* the estimate for a sharp model: the integer tables give
  # every symbol at least 2^-24, so the rare far-tail symbol (float estimate > 24 bits) is
  # cheaper than the float model says. Either way the two agree to a fraction of a percent.
  assert abs(sum(stats.actual_bits.values()) - theory) <= 0.005 * theory
  assert stats.file_bits <= 1.002 * theory + stats.header_bits
  back, _ = codec.decode(data, model)
  np.testing.assert_array_equal(back.pixels, image.pixels)


PYRAMID_VARIANTS = {"rgb": (RGBBicubicConfig, {}),
                    "rgb_residual": (RGBBicubicConfig, {"residual_means": True}),
                    "rgb_phases": (RGBBicubicPhasedConfig, {}),
                    "rgb_interlaced": (RGBInterlacedConfig, {})}


@functools.lru_cache(maxsize=None)
def _pyramid_model(name):
  """A tiny model of an RGB pyramid family (every scale coded as RGB with coupling)."""
  cls, extra = PYRAMID_VARIANTS[name]
  cfg = cls(num_channels=8, num_res_blocks=1, num_mixtures=2, **extra)
  return model_io.random_model(cfg, broad_heads=True)


@pytest.fixture(scope="module", params=sorted(PYRAMID_VARIANTS))
def pyramid_model(request):
  """A tiny model of each RGB pyramid family (every scale coded as RGB with coupling)."""
  return _pyramid_model(request.param)


# Slow: every family compiles its coder at several shapes (~10-35 s each here). In the default
# suite the shipped model's golden files stand for the pyramid families
# (test_shipped_model.py).
@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (21, 35)])
@pytest.mark.slow
def test_codec_pyramid_roundtrip_odd_sizes_modes_and_tiles(pyramid_model, np_rng, shape):
  x = np_rng.integers(0, 256, shape + (4,)).astype(np.uint8)
  _roundtrip(pyramid_model, images.from_array(x[..., :3]))
  _roundtrip(pyramid_model, images.ImageData(np.ascontiguousarray(x[..., 0]), "L"))
  _roundtrip(pyramid_model, images.ImageData(np.ascontiguousarray(x), "RGBA"), tile_size=32)


@pytest.mark.slow
def test_codec_pyramid_streams_and_bits(pyramid_model, np_rng):
  yy, xx = np.mgrid[0:21, 0:35]
  smooth = np.stack([yy * 9, xx * 6, (yy + xx) * 4], -1).astype(np.uint8)
  data, stats = _encode(images.from_array(smooth), pyramid_model, estimate=True)
  header, streams = bitstream.unpack(data)
  cfg = pyramid_model.config
  phases = (3 if cfg.interlaced else 4) if cfg.phased else 1
  assert len(streams) == 1 + 3 * 3 * phases              # x^(3), then R, G, B of 3 scales
  assert len(streams[0]) >= 3 * 5 - 8                    # 24x40 padded -> 3x5 top, 8 bit each
  assert set(stats.actual_bits) == set(stats.theory_bits) == {"x3", "x2", "x1", "x"}
  assert stats.file_bits == stats.header_bits + sum(stats.actual_bits.values())
  assert stats.theory_bits["x3"] == 3 * 5 * 3 * 8.0
  for key, bits in stats.actual_bits.items():
    # + up to one 32-bit word of range-coder flush per substream (3 * phases per scale)
    assert abs(bits - stats.theory_bits[key]) <= 0.05 * stats.theory_bits[key] + 96 * phases, key
  gray, _ = _encode(images.ImageData(np.ascontiguousarray(smooth[..., 0]), "L"),
                         pyramid_model)
  assert len(bitstream.unpack(gray)[1]) == 1 + 3 * phases   # one channel per scale (phase)
  with pytest.raises(CodecError, match="different model"):
    codec.decode(data, model_io.random_model(pyramid_model.config, seed=1))


# Slow: each family compiles its training loss and the coder at one more shape (~10-25 s each
# here).
@pytest.mark.parametrize("family", sorted(PYRAMID_VARIANTS))
@pytest.mark.slow
def test_codec_pyramid_estimate_equals_the_training_loss(family, np_rng):
  """The coder's per-phase heads (causal: later phases unknown) give the same bits as the
  training forward pass (teacher forcing) of the form it codes with (the exact one): the model
  never peeks at what the decoder lacks, and exact training optimizes what files cost."""
  pyramid_model = _pyramid_model(family)
  x = np_rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
  _, stats = _encode(images.from_array(x), pyramid_model, estimate=True)
  _, metrics = jax.jit(step_lib.loss_fn, static_argnums=(2,))(
      pyramid_model.params, jnp.asarray(x[None], jnp.float32), pyramid_model.exact.config)
  for key in ("x", "x1", "x2", "x3"):
    np.testing.assert_allclose(stats.theory_bits[key] / x.size,
                               float(metrics[f"bpsp_{key}"]), rtol=2e-4, err_msg=key)


def test_codec_tile_grid_covers_the_image_exactly_once():
  h, w, t = 37, 50, 16
  cover = np.zeros((h, w), int)
  for y, x, th, tw in codec.tile_grid(h, w, t):
    assert th <= t and tw <= t
    cover[y:y + th, x:x + tw] += 1
  assert np.all(cover == 1)
  assert len(codec.tile_grid(h, w, t)) == 3 * 4
