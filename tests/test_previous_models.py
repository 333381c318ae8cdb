"""Files written by an earlier release's default model still decode without naming a model
(`model_io.shipped_model_for`, `l3c_jax/previous_models/`), through the API and the CLI."""

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import l3c_jax
from l3c_jax import api
from l3c_jax import cli
from l3c_jax import model_io
from l3c_jax.coding.bitstream import CodecError

from conftest import random_params


@pytest.fixture
def releases(tmp_path, monkeypatch, tiny_config, tiny_params):
  """(old default, new default): the old one kept in a previous_models/ directory under its
  fingerprint, the new one what `load_default_model` returns."""
  exact = tiny_config.replace(exact=True)  # what is shipped, and what a file's header names
  old = model_io.Model(exact, tiny_params)
  new = model_io.Model(exact, random_params(tiny_config, seed=1))
  assert old.fingerprint != new.fingerprint
  previous = tmp_path / "previous_models"
  model_io.save_model(str(previous / old.fingerprint[:32]), exact, tiny_params)
  monkeypatch.setattr(model_io, "PREVIOUS_MODELS_DIR", str(previous))
  monkeypatch.setattr(model_io, "load_default_model", lambda: new)
  model_io._load_previous.cache_clear()  # pylint: disable=protected-access
  yield old, new
  model_io._load_previous.cache_clear()  # pylint: disable=protected-access


@pytest.mark.slow
def test_files_of_the_previous_default_decode_without_a_model(tmp_path, np_rng, releases):
  old, new = releases
  pixels = np_rng.integers(0, 256, (11, 13, 3)).astype(np.uint8)
  data = l3c_jax.compress(pixels, model=old, method="model")
  assert api.shipped_model_for_file(data).fingerprint == old.fingerprint
  np.testing.assert_array_equal(l3c_jax.decompress(data), pixels)
  # The current default's own files still pick the current default.
  assert api.shipped_model_for_file(
      l3c_jax.compress(pixels, model=new, method="model")) is new
  # The command line without --model: one file of each release in one call.
  (tmp_path / "old.l3c").write_bytes(data)
  (tmp_path / "new.l3c").write_bytes(l3c_jax.compress(pixels[:7], model=new, method="model"))
  out, err = io.StringIO(), io.StringIO()
  rc = cli.main(["decompress", str(tmp_path / "old.l3c"), str(tmp_path / "new.l3c")],
                out=out, err=err)
  assert rc == 0 and not err.getvalue(), err.getvalue()
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "old.png")), pixels)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "new.png")), pixels[:7])


@pytest.mark.slow
def test_files_of_an_unknown_model_are_refused_with_both_fingerprints(np_rng, releases,
                                                                      tiny_config):
  _, new = releases
  stranger = model_io.Model(tiny_config.replace(exact=True),
                            random_params(tiny_config, seed=2))
  data = l3c_jax.compress(np_rng.integers(0, 256, (8, 8, 3)).astype(np.uint8),
                          model=stranger, method="model")
  assert api.shipped_model_for_file(data) is new
  with pytest.raises(CodecError, match="different model") as info:
    l3c_jax.decompress(data)
  assert stranger.fingerprint[:32] in str(info.value)
  assert new.fingerprint[:32] in str(info.value)


def test_embedded_streams_decode_without_loading_any_model(monkeypatch, tiny_config,
                                                           tiny_params):
  pal = (np.arange(48 * 40) % 5).reshape(40, 48).astype(np.uint8) * 40
  data = l3c_jax.compress(pal, model=model_io.Model(tiny_config, tiny_params), method="png")

  def fail():
    raise AssertionError("a model was loaded")
  monkeypatch.setattr(model_io, "load_default_model", fail)
  assert api.shipped_model_for_file(data) is None
  np.testing.assert_array_equal(l3c_jax.decompress(data), pal)


def test_a_damaged_previous_model_is_a_model_error(tmp_path, releases, tiny_config):
  old, _ = releases
  other = tmp_path / "other"
  model_io.save_model(str(other), tiny_config.replace(exact=True),
                      random_params(tiny_config, seed=3))
  target = os.path.join(model_io.PREVIOUS_MODELS_DIR, old.fingerprint[:32])
  shutil.copy(other / model_io.PARAMS_FILE, os.path.join(target, model_io.PARAMS_FILE))
  with pytest.raises(model_io.ModelError, match="damaged"):
    model_io.shipped_model_for(bytes.fromhex(old.fingerprint[:32]))


def test_the_shipped_previous_models_are_named_by_their_fingerprints():
  """What the package ships: each previous model loads and its directory names it."""
  if not os.path.isdir(model_io.PREVIOUS_MODELS_DIR):
    pytest.skip("no previous models shipped")
  names = sorted(os.listdir(model_io.PREVIOUS_MODELS_DIR))
  assert names
  default = model_io.load_default_model().fingerprint
  for name in names:
    assert len(name) == 32 and not default.startswith(name), name
    model = model_io.shipped_model_for(bytes.fromhex(name))
    assert model.fingerprint.startswith(name) and model.config.exact
