"""Fuzzing the decoder: a few hundred mutated files must each give a clean CodecError.

Slow (a few minutes on the 2-core CPU): `pytest -m slow tests/test_fuzz.py`.
"""

import dataclasses
import io
import time

import numpy as np
import pytest

from l3c_jax import cli
from l3c_jax import model_io
from l3c_jax.coding import bitstream
from l3c_jax.coding import codec
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images

pytestmark = pytest.mark.slow

MAX_DECODE_SECONDS = 30.0  # generous: a hang would exceed it by far


@pytest.fixture(autouse=True)
def no_home_cache(monkeypatch):
  monkeypatch.setenv("L3C_JAX_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def model(tiny_config, tiny_params):
  return model_io.Model(tiny_config, tiny_params)


@pytest.fixture(scope="module")
def originals(model):
  gen = np.random.default_rng(1)
  rnd = lambda *s: gen.integers(0, 256, s).astype(np.uint8)
  imgs = [
      images.ImageData(rnd(7, 9, 3), "RGB"),
      images.ImageData(rnd(13, 19, 4), "RGBA"),
      images.ImageData(rnd(7, 9), "L"),
      images.ImageData(rnd(13, 19) % 7, "P", bytes(rnd(21)), bytes(rnd(7))),
  ]
  out = [(img, codec.encode(img, model, method="model")[0]) for img in imgs]
  # Embedded classical streams too (their decoder is Pillow, behind our bounds).
  few = images.ImageData(rnd(13, 19) % 7, "P", bytes(rnd(21)), bytes(rnd(7)))
  out += [(few, codec.encode(few, model, method=m)[0]) for m in ("png", "webp")]
  return out


def _mutate(data: bytes, gen: np.random.Generator) -> bytes:
  b = bytearray(data)
  kind = gen.integers(0, 6)
  if kind == 0:  # flip one bit
    i = int(gen.integers(0, len(b)))
    b[i] ^= 1 << int(gen.integers(0, 8))
  elif kind == 1:  # overwrite a few random bytes
    for i in gen.integers(0, len(b), int(gen.integers(1, 8))):
      b[int(i)] = int(gen.integers(0, 256))
  elif kind == 2:  # truncate
    del b[int(gen.integers(0, len(b))):]
  elif kind == 3:  # insert bytes
    i = int(gen.integers(0, len(b) + 1))
    b[i:i] = bytes(gen.integers(0, 256, int(gen.integers(1, 9))).astype(np.uint8))
  elif kind == 4:  # delete a range
    i = int(gen.integers(0, len(b)))
    del b[i:i + int(gen.integers(1, 9))]
  else:  # a header byte (the most structured part)
    i = int(gen.integers(0, min(len(b), 80)))
    b[i] = int(gen.integers(0, 256))
  return bytes(b)


def _decode_is_clean(data, model, original):
  t0 = time.perf_counter()
  try:
    back, _ = codec.decode(data, model)
  except CodecError as e:
    msg = str(e)
    assert msg and "\n" not in msg
    return True
  finally:
    assert time.perf_counter() - t0 < MAX_DECODE_SECONDS
  # Accepted only if it is the original image exactly (e.g. an inert change).
  assert back.mode == original.mode
  np.testing.assert_array_equal(back.pixels, original.pixels)
  return False


def test_fuzz_mutated_files_are_refused_cleanly(model, originals):
  gen = np.random.default_rng(2024)
  refused = 0
  for trial in range(300):
    original, data = originals[trial % len(originals)]
    mutated = _mutate(data, gen)
    if mutated == data:
      continue
    refused += _decode_is_clean(mutated, model, original)
  assert refused >= 290  # checksums catch every change of the bytes


def test_fuzz_payload_mutations_with_valid_checksums(model, originals):
  """Checksums recomputed: the decoder itself must fail cleanly or reproduce the original."""
  gen = np.random.default_rng(7)
  refused = 0
  for trial in range(60):
    original, data = originals[trial % len(originals)]
    header, streams = bitstream.unpack(data)
    streams = [bytearray(s) for s in streams]
    i = int(gen.integers(0, len(streams)))
    if not streams[i]:
      continue
    j = int(gen.integers(0, len(streams[i])))
    streams[i][j] ^= 1 << int(gen.integers(0, 8))
    forged = bitstream.pack(header, [bytes(s) for s in streams])
    refused += _decode_is_clean(forged, model, original)
  assert refused >= 40


def test_fuzz_cli_reports_one_line_and_exit_1(model, originals, tmp_path, tiny_config,
                                              tiny_params):
  model_dir = tmp_path / "model"
  model_io.save_model(str(model_dir), tiny_config, tiny_params)
  gen = np.random.default_rng(3)
  for trial in range(20):
    _, data = originals[trial % len(originals)]
    path = tmp_path / f"m{trial}.l3c"
    path.write_bytes(_mutate(data, gen))
    err = io.StringIO()
    rc = cli.main(["decompress", str(path), "-o", str(tmp_path / f"m{trial}.png"), "--model",
                   str(model_dir)], out=io.StringIO(), err=err)
    assert rc == 1 and err.getvalue().startswith("l3c-jax: error: ")
    assert err.getvalue().count("\n") == 1
    assert not (tmp_path / f"m{trial}.png").exists()


def test_fuzz_forged_headers_with_valid_checksums_are_refused(model, originals):
  """Structured lies in a correctly checksummed header (sizes, tiles, modes, counts)."""
  original, data = originals[0]
  header, streams = bitstream.unpack(data)
  lies = [dict(height=header.height + 8), dict(width=1 << 19), dict(tile_size=12),
          dict(tile_size=8), dict(pad_h=header.pad_h + 1), dict(mode="L"), dict(mode="P"),
          dict(components=((bitstream.COMPONENT_GRAY, 0),)),
          dict(components=((bitstream.COMPONENT_RGB, 9),)), dict(transparency=3),
          dict(method=bitstream.METHOD_PNG), dict(tile_crc32s=header.tile_crc32s * 2),
          dict(tile_crc32s=()), dict(metadata=((b"tEXt", b"a\0b"),))]
  for lie in lies:
    forged = bitstream.pack(dataclasses.replace(header, **lie), streams)
    assert _decode_is_clean(forged, model, original), lie
  for original, data in originals[-2:]:  # embedded streams
    header, streams = bitstream.unpack(data)
    for lie in [dict(height=header.height + 1), dict(width=1 << 19), dict(mode="L"),
                dict(mode="RGB", palette=None, transparency=None),
                dict(method=bitstream.METHOD_MODEL), dict(tile_size=64),
                dict(method=3 - header.method), dict(palette=header.palette[::-1])]:
      forged = bitstream.pack(dataclasses.replace(header, **lie), streams)
      assert _decode_is_clean(forged, model, original), lie
