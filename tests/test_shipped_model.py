"""The shipped default model: golden files, a round trip and the information bound on a photo.

Golden `.l3c` files (tests/testdata/goldens/) guard the bitstream: they must decode bit-exactly,
and encoding their images must give the same bytes (model-coded goldens; the `palette_auto`
golden holds an embedded PNG / WebP stream, whose bytes depend on Pillow's zlib and libwebp, so
it is checked by decoding only). Files of format version 2 (tests/testdata/format2/, written by
l3c-jax 0.2) and 3 (tests/testdata/format3/: the goldens before pixel steps were window-coded)
must still decode, and so must the files of the earlier default models (tests/testdata/model1/:
v1's format-4 goldens; model2/: v2 interim's), through the shipped model each header names
(`l3c_jax/previous_models/`).
The goldens are regenerated only by an explicit
switch, `L3C_UPDATE_GOLDENS=1 python -m pytest tests/test_shipped_model.py`, and only when the
format version or the shipped model changed (anything else that changes the bytes is a bug, or
needs a format-version bump in the same commit).
"""

import hashlib
import json
import os
import pathlib
import struct

import numpy as np
import pytest
from PIL import Image

from l3c_jax import api
from l3c_jax import model_io
from l3c_jax.coding import bitstream
from l3c_jax.coding import codec
from l3c_jax.data import images

import photo

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "testdata" / "goldens"
MANIFEST = GOLDEN_DIR / "manifest.json"
UPDATE = os.environ.get("L3C_UPDATE_GOLDENS") == "1"


def golden_image(name: str) -> images.ImageData:
  """The image behind each golden file, made from the test photo (odd sizes, several modes)."""
  rgb = photo.photo(47, 61)
  if name == "rgb":  # with metadata records
    return images.ImageData(rgb, "RGB", metadata=(
        (b"gAMA", struct.pack(">I", 45455)), (b"tEXt", b"Title\0golden")))
  if name == "gray":
    return images.from_pil(Image.fromarray(rgb[:41, :57]).convert("L"))
  if name == "rgba":  # alpha varies: coded as a second (gray) component
    alpha = (np.arange(33 * 40) % 251).reshape(33, 40).astype(np.uint8)
    return images.from_array(np.concatenate([rgb[:33, :40], alpha[..., None]], axis=2))
  if name in ("palette", "palette_auto"):  # 16 colours, index plane + palette in the header
    return images.from_pil(Image.fromarray(rgb).quantize(16, dither=Image.Dither.NONE))
  raise KeyError(name)


NAMES = ("rgb", "gray", "rgba", "palette", "palette_auto")
MODEL_CODED = ("rgb", "gray", "rgba", "palette")  # encoding must reproduce their bytes
FORMAT2 = GOLDEN_DIR.parent / "format2"  # format 2 goldens of l3c-jax 0.2 (without metadata)
FORMAT3 = GOLDEN_DIR.parent / "format3"  # format 3 goldens (pixel steps with whole tables)
MODEL1 = GOLDEN_DIR.parent / "model1"  # format 4 goldens of the first default model (v1)
MODEL2 = GOLDEN_DIR.parent / "model2"  # format 4 goldens of the second (v2 interim)


def _slow_but_rgb(names):
  """The golden names as test parameters, each but rgb marked slow: every other mode compiles the
  shipped model's exact steps at more shapes (~10-20 s each here)."""
  return [n if n == "rgb" else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _method(name: str) -> str:
  return "model" if name in MODEL_CODED else "auto"


@pytest.fixture(scope="module")
def model():
  return model_io.load_default_model()


def _manifest() -> dict:
  return json.loads(MANIFEST.read_text())


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not UPDATE, reason="set L3C_UPDATE_GOLDENS=1 to regenerate the goldens")
def test_regenerate_goldens(model):
  """The explicit switch: rewrites the goldens when the format version or the model changed."""
  old = _manifest() if MANIFEST.exists() else None
  files = {}
  for name in NAMES:
    image = golden_image(name)
    data, _ = codec.encode(image, model, method=_method(name))
    files[name] = {"file": f"{name}.l3c", "mode": image.mode, "height": image.height,
                   "width": image.width, "bytes": len(data), "sha256": _sha256(data)}
    if (old is not None and name in old["files"]
        and old["files"][name]["sha256"] != files[name]["sha256"]):
      assert (old["format_version"] != bitstream.FORMAT_VERSION
              or old["model_fingerprint"] != model.fingerprint), (
                  f"golden {name} changes although neither the format version "
                  f"({bitstream.FORMAT_VERSION}) nor the shipped model changed: bump "
                  "bitstream.FORMAT_VERSION in the same commit, or fix the regression")
    (GOLDEN_DIR / f"{name}.l3c").write_bytes(data)
  GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
  MANIFEST.write_text(json.dumps({
      "format_version": bitstream.FORMAT_VERSION, "model_fingerprint": model.fingerprint,
      "source_image": photo.SOURCE, "files": files}, indent=2, sort_keys=True) + "\n")


def test_golden_manifest_matches_this_version(model):
  m = _manifest()
  assert m["format_version"] == bitstream.FORMAT_VERSION, (
      "bitstream.FORMAT_VERSION changed: regenerate the goldens (L3C_UPDATE_GOLDENS=1)")
  assert m["model_fingerprint"] == model.fingerprint, (
      "the shipped model changed: regenerate the goldens (L3C_UPDATE_GOLDENS=1)")
  assert sorted(m["files"]) == sorted(NAMES)


@pytest.mark.parametrize("name", _slow_but_rgb(NAMES))
def test_golden_decodes_bit_exactly(model, name):
  data = (GOLDEN_DIR / f"{name}.l3c").read_bytes()
  assert _sha256(data) == _manifest()["files"][name]["sha256"]
  image, stats = codec.decode(data, model)
  want = golden_image(name)
  assert image.mode == want.mode
  np.testing.assert_array_equal(image.pixels, want.pixels)
  assert image.palette == want.palette
  assert image.metadata == want.metadata
  assert (stats.method == bitstream.METHOD_MODEL) == (name in MODEL_CODED)


# By default the rgb file of each earlier format and model; the other modes and format 2 (its
# own decoding path) are slow (more compiled shapes, ~5-12 s each here).
@pytest.mark.parametrize("folder,name", [
    (d, n) if n == "rgb" and d != FORMAT2 else pytest.param(d, n, marks=pytest.mark.slow)
    for d, names in ((FORMAT2, ("rgb", "gray", "palette")), (FORMAT3, MODEL_CODED),
                     (MODEL1, MODEL_CODED), (MODEL2, MODEL_CODED)) for n in names],
    ids=lambda v: v.name if isinstance(v, pathlib.Path) else v)
def test_files_of_earlier_formats_and_models_still_decode(model, folder, name):
  """Format 2 (no metadata) and format 3 (pixel steps with whole tables) files, and the earlier
  default models' files: each decoded, as a user would, with the shipped model it names."""
  data = (folder / f"{name}.l3c").read_bytes()
  version = {FORMAT2: 2, FORMAT3: 3, MODEL1: 4, MODEL2: 4}[folder]
  assert data[4] == version
  named = api.shipped_model_for_file(data)
  assert bytes.fromhex(named.fingerprint)[:16] == bitstream.unpack(data)[0].fingerprint
  assert named is not model  # all of these were written by an earlier default model
  image, _ = codec.decode(data, named)
  want = golden_image(name)
  np.testing.assert_array_equal(image.pixels, want.pixels)
  assert image.mode == want.mode and image.palette == want.palette
  assert image.metadata == (() if version == 2 else want.metadata)


@pytest.mark.parametrize("name", _slow_but_rgb(MODEL_CODED))
def test_encoding_gives_the_golden_bytes(model, name):
  data, _ = codec.encode(golden_image(name), model, method="model")
  want = (GOLDEN_DIR / f"{name}.l3c").read_bytes()
  assert len(data) == len(want)
  assert data == want, f"{name}: the bitstream changed (same length, other bytes)"


@pytest.mark.slow
def test_shipped_model_round_trip_and_information_bound(model):
  """The whole test photo (150 x 128): exact, and the file costs what the model says."""
  image = images.from_array(photo.photo(150, 128))
  data, stats = codec.encode(image, model, estimate=True, method="model")
  theory_bits = sum(stats.theory_bits.values())
  written_bits = sum(stats.actual_bits.values())
  # Written bits may be a little below the estimate for a sharp model (the integer tables give
  # every symbol at least 2^-24, so a far-tail symbol is cheaper than its float estimate); each
  # substream also ends with at most one 32-bit word of the range coder's state.
  num_streams = len(bitstream.unpack(data)[1])
  assert written_bits >= 0.995 * theory_bits
  assert written_bits <= 1.002 * theory_bits + 32 * num_streams
  assert stats.file_bits == written_bits + stats.header_bits
  back, _ = codec.decode(data, model)
  np.testing.assert_array_equal(back.pixels, image.pixels)
  # A photo, not noise: the model must code it well below 8 bits per sub-pixel.
  assert stats.bpsp < 6.0
