"""Portable files: encoded here, decoded (and re-encoded) where the CPU numerics differ.

Subprocesses on purpose: XLA reads XLA_FLAGS (instruction set, fast math) and its thread pool
size once per process, so each environment is a fresh interpreter. Each child decodes every
file written by this process and must get the exact pixels, and encodes every image and must
write the exact same bytes. Before numerics version 1, the SSE4.2 and fast-math environments
refused 68 % / 99.9 % of the table rows of such files.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from l3c_jax.coding import codec
from l3c_jax import model_io
from l3c_jax.data import images
from l3c_jax.models import l3c as l3c_lib
import photo

_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
ENVIRONMENTS = {
    "sse4_2": "--xla_cpu_max_isa=SSE4_2",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    "one_thread": _ONE_THREAD,
}
# The default suite runs one child with every perturbation at once on the tiny model's file
# (each child costs a jax start and compilations; the shipped model's compile ~1 min here, in
# this process and in the child); `-m slow` runs the shipped model's files too, at once and in
# each environment on its own.
ALL_AT_ONCE = " ".join(ENVIRONMENTS.values())

# A tiny L3C in exact form (random weights from a fixed NumPy seed: the same on every machine).
TINY_L3C = l3c_lib.L3CConfig(num_channels=8, num_res_blocks=1, latent_channels=2,
                             num_mixtures=2, exact=True)

_CHILD = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    from l3c_jax import model_io
    from l3c_jax.coding import codec
    from l3c_jax.data import images
    from l3c_jax.models import families
    work = sys.argv[1]
    cases = json.load(open(work + "/cases.json"))
    models = {"default": model_io.load_default_model()}
    out = {}
    for name, case in cases.items():
      if case["model"] not in models:
        models[case["model"]] = model_io.random_model(
            families.config_from_dict(case["config"]), seed=case["seed"])
      model = models[case["model"]]
      pixels = np.load(work + "/" + name + ".npy")
      data = open(work + "/" + name + ".l3c", "rb").read()
      try:
        image, _ = codec.decode(data, model)
        decoded = bool(np.array_equal(image.pixels, pixels))
      except codec.CodecError as e:
        decoded = str(e)
      encoded, _ = codec.encode(images.from_array(pixels), model, method="model")
      out[name] = {"decoded": decoded, "same_bytes": encoded == data}
    print("RESULT " + json.dumps(out))
""")


def _write(work, cases):
  """Encodes {name: (pixels, model name, tiny config or None)} into the folder `work`."""
  default = model_io.load_default_model()
  meta = {}
  for name, (pixels, which, config) in cases.items():
    model = default if config is None else model_io.random_model(config, seed=3)
    data, _ = codec.encode(images.from_array(pixels), model, method="model")
    np.save(work / f"{name}.npy", pixels)
    (work / f"{name}.l3c").write_bytes(data)
    meta[name] = {"model": which, "seed": 3,
                  "config": None if config is None else config.to_dict()}
  (work / "cases.json").write_text(json.dumps(meta))
  return work


def _tiny_case():
  return {"l3c_tiny": (photo.photo(24, 40), "tiny", TINY_L3C)}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """Files written in this (default) environment: {name: (pixels, bytes)} in a folder."""
  rgb = photo.photo(37, 50)
  cases = {
      "rgb": (rgb, "default", None),
      "gray": (np.ascontiguousarray(rgb[3:30, 5:44, 1]), "default", None),
      **_tiny_case(),
  }
  return _write(tmp_path_factory.mktemp("portable"), cases)


@pytest.fixture(scope="module")
def written_tiny(tmp_path_factory):
  """The tiny exact model's file alone (no shipped-model compile)."""
  return _write(tmp_path_factory.mktemp("portable_tiny"), _tiny_case())


def _run_child(work, env_update, prefix=()):
  env = dict(os.environ, **env_update)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run(list(prefix) + [sys.executable, "-c", _CHILD, str(work)], env=env,
                        capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def _one_cpu_prefix(flags):
  return ("taskset", "-c", "0") if _ONE_THREAD in flags and shutil.which("taskset") else ()


def test_tiny_model_file_decodes_and_encodes_identically_under_other_numerics(written_tiny):
  result = _run_child(written_tiny, {"XLA_FLAGS": ALL_AT_ONCE}, _one_cpu_prefix(ALL_AT_ONCE))
  assert result == {"l3c_tiny": {"decoded": True, "same_bytes": True}}, result


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["all_at_once"] + sorted(ENVIRONMENTS))
def test_files_decode_and_encode_identically_under_other_numerics(written, env_name):
  flags = ALL_AT_ONCE if env_name == "all_at_once" else ENVIRONMENTS[env_name]
  prefix = _one_cpu_prefix(flags)
  result = _run_child(written, {"XLA_FLAGS": flags}, prefix)
  assert set(result) == {"rgb", "gray", "l3c_tiny"}
  for name, r in result.items():
    assert r["decoded"] is True, (env_name, name, r["decoded"])
    assert r["same_bytes"], (env_name, name)
