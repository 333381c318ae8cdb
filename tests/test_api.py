"""The Python API (`l3c_jax.compress` / `decompress`) raises only the documented error types,
whatever it is given."""

import io

import numpy as np
import pytest
from PIL import Image

import l3c_jax
from l3c_jax import model_io
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data.images import ImageError


@pytest.fixture(scope="module")
def tiny_model(tiny_config, tiny_params):
  return model_io.Model(tiny_config, tiny_params)


def _bad_images(tmp_path):
  """(label, input) pairs that are not codable images."""
  (tmp_path / "notes.txt").write_text("not an image")
  buf = io.BytesIO()
  Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(buf, "PNG")
  (tmp_path / "truncated.png").write_bytes(buf.getvalue()[:60])
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "a_directory").mkdir()
  return [
      ("0-d", np.uint8(3)), ("0-d array", np.array(3, np.uint8)),
      ("1-d", np.zeros(10, np.uint8)), ("4-d", np.zeros((2, 2, 2, 3), np.uint8)),
      ("5 channels", np.zeros((4, 4, 5), np.uint8)), ("0 channels", np.zeros((4, 4, 0), np.uint8)),
      ("float", np.zeros((4, 4))), ("float32 rgb", np.zeros((4, 4, 3), np.float32)),
      ("bool", np.zeros((4, 4), bool)), ("int8", np.zeros((4, 4), np.int8)),
      ("uint16", np.zeros((4, 4), np.uint16)), ("complex", np.zeros((4, 4), complex)),
      ("empty 0xN", np.zeros((0, 5), np.uint8)), ("empty Nx0x3", np.zeros((5, 0, 3), np.uint8)),
      ("object array", np.array([[object()]])), ("string array", np.array([["a"]])),
      ("None", None), ("dict", {}), ("bytes", b"\x89PNG"), ("ragged list", [[1, 2], [3]]),
      ("nested list of ints", [[1, 2], [3, 4]]),
      ("CMYK image", Image.new("CMYK", (3, 2))), ("16-bit image", Image.new("I;16", (3, 2))),
      ("text file", str(tmp_path / "notes.txt")), ("truncated PNG", tmp_path / "truncated.png"),
      ("empty file", tmp_path / "empty.png"), ("directory", tmp_path / "a_directory"),
      ("missing file", str(tmp_path / "missing.png")),
  ]


def test_compress_raises_only_image_error_for_bad_inputs(tmp_path, tiny_model):
  for label, bad in _bad_images(tmp_path):
    with pytest.raises(ImageError) as info:
      l3c_jax.compress(bad, model=tiny_model)
    assert "\n" not in str(info.value), label


def test_decompress_raises_only_codec_error_for_bad_inputs(tiny_model, testdata_dir):
  # A real file of another model (the shipped one's golden): refused before any decoding, so
  # no compiling here; truncated and corrupt files are tested in test_cli / test_codec.
  other = (testdata_dir / "goldens" / "rgb.l3c").read_bytes()
  for label, bad in [("None", None), ("str", "abc"), ("int", 123), ("array", np.zeros(4)),
                     ("list", [1, 2]), ("empty", b""), ("garbage", b"\0" * 64),
                     ("truncated", other[:10]), ("bytearray of another model", bytearray(other)),
                     ("memoryview of another model", memoryview(other))]:
    with pytest.raises(CodecError) as info:
      l3c_jax.decompress(bad, model=tiny_model)
    assert "\n" not in str(info.value), label
