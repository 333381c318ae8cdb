"""Shared pytest fixtures for the l3c_jax test suite.

The suite runs on the CPU backend unless JAX_PLATFORMS is already set (e.g. to run the `gpu`
tests on a machine with an accelerator). This must happen before the first `import jax`.

`jax_numpy_rank_promotion='raise'` is deliberately NOT enabled: the core relies on implicit rank
promotion (`quantizer.to_symbols`/`soft_quantize`: y[..., None] - levels; `layers.AffineConv1x1`:
einsum(...) + bias), which that setting rejects.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if os.environ.get("PYTEST_XDIST_WORKER"):
  # Several test processes (setup.cfg: -n) may share one accelerator: none may take 75 % of it.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# The tests' tiny models spend most of their time in XLA's compiler, not running: without LLVM's
# optimizations the default suite takes ~30 % less time. Exact numerics do not depend on it (the
# golden files decode and encode to the same bytes either way; that is what the portable format
# promises). An XLA_FLAGS that sets the level already (e.g. =2, what users run) is kept.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()

import math  # pylint: disable=g-import-not-at-top,g-bad-import-order
import pathlib  # pylint: disable=g-import-not-at-top,g-bad-import-order

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from l3c_jax.models import layers  # pylint: disable=g-import-not-at-top
from l3c_jax.models.config import L3CConfig  # pylint: disable=g-import-not-at-top
from l3c_jax.models.families import param_shapes  # pylint: disable=g-import-not-at-top

TESTDATA_DIR = pathlib.Path(__file__).resolve().parent / "testdata"


@pytest.fixture(scope="session")
def tiny_config() -> L3CConfig:
  """A small L3C (C_f=8, 1 ResBlock, C_q=2, K=2, paper S=3, L=25) that compiles in ~1-2 s."""
  return L3CConfig(num_channels=8, num_res_blocks=1, latent_channels=2, num_mixtures=2)


def random_params(config: L3CConfig, seed: int = 0):
  """Random L3C parameters without compiling `init_params` (which takes 5-25 s on this CPU).

  Shapes come from `param_shapes` (jax.eval_shape, ~0.5 s); conv kernels and biases are drawn
  U(+-1/sqrt(fan_in)) like PyTorch's default init; the two input-normalization 1x1 convs get their
  fixed affine values (x - 255*mean, then /128).
  """
  gen = np.random.default_rng(seed)

  def draw(path, leaf):
    names = [getattr(k, "key", str(k)) for k in path]
    if names[0] in ("input_shift", "input_scale"):
      eye = np.eye(3, dtype=np.float32)
      if names[0] == "input_scale":
        return eye.reshape(leaf.shape) / 128 if names[-1] == "kernel" else np.zeros(3, np.float32)
      return (eye.reshape(leaf.shape) if names[-1] == "kernel"
              else -255.0 * np.asarray(layers.RGB_MEAN, np.float32))
    fan_in = math.prod(leaf.shape[:-1]) if names[-1] == "kernel" else None
    if fan_in is None:  # a bias: fan_in of its kernel is not known here; any small scale will do
      fan_in = 9 * config.num_channels
    bound = 1.0 / math.sqrt(fan_in)
    return gen.uniform(-bound, bound, size=leaf.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, param_shapes(config))


def write_images(directory, n: int = 6, height: int = 40, width: int = 48,
                 seed: int = 0) -> str:
  """Writes `n` random RGB PNGs (uniform noise, `height` x `width`, fixed seed) named
  im0.png, im1.png, ... into `directory` (created if missing); returns it as a str. The image
  folder of the tests that train or check a device (their content does not matter, only that
  crops of 16 px fit)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  os.makedirs(directory, exist_ok=True)
  gen = np.random.default_rng(seed)
  for i in range(n):
    pixels = gen.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(os.path.join(directory, f"im{i}.png"))
  return str(directory)


@pytest.fixture(scope="session")
def tiny_params(tiny_config):
  """Random (non-compiled) parameters of `tiny_config`, see `random_params`."""
  return random_params(tiny_config)


@pytest.fixture
def rng() -> jax.Array:
  """A fixed JAX PRNG key (a fresh one per test, so tests do not depend on each other's draws)."""
  return jax.random.key(0)


@pytest.fixture
def np_rng() -> np.random.Generator:
  """A fixed NumPy generator (fresh per test)."""
  return np.random.default_rng(0)


@pytest.fixture(scope="session")
def testdata_dir() -> pathlib.Path:
  """Path of tests/testdata."""
  return TESTDATA_DIR


@pytest.fixture(autouse=True)
def no_home_cache(monkeypatch):
  """The CLI's main() would enable the persistent XLA cache under ~/.cache; not from the tests."""
  monkeypatch.setenv("L3C_JAX_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_config, tiny_params) -> str:
  """A tiny random model saved with `model_io.save_model` (a model directory on disk)."""
  from l3c_jax import model_io  # pylint: disable=import-outside-toplevel
  d = tmp_path_factory.mktemp("model")
  model_io.save_model(str(d), tiny_config, tiny_params)
  return str(d)


# Compiled code is dropped after a module once this process holds more than this (resident).
# Measured without any dropping (2 cores, Nov 2026): 2.4 GB after test_codec, 4.4 GB after
# test_launchers, 4.9 GB after test_report (the old drop-after-every-module peaked at 3.6-3.9 GB);
# above the limit every module drops its code again, as before. (A persistent compilation cache
# in a session directory was tried as well: ~10 % more CPU where nothing is compiled twice.)
_RELEASE_ABOVE_BYTES = 6 * 2**30


def _resident_bytes() -> int:
  """This process's resident memory (Linux); without /proc, a value that always releases."""
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, IndexError):
    return _RELEASE_ABOVE_BYTES + 1


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_code():
  """Drops every compiled function after a test module once the process is large. Why: each
  new model config or image shape compiles the network (~100-200 MB of code for the
  default-size model), and one pytest process holding all of them grew past 10 GB on this
  machine. Below the limit the tiny models' code is kept for the next modules (most modules
  compile the same tiny configs at the same shapes)."""
  yield
  if _resident_bytes() <= _RELEASE_ABOVE_BYTES:
    return
  from l3c_jax.models import plan  # pylint: disable=import-outside-toplevel
  plan._jitted.cache_clear()  # pylint: disable=protected-access
  jax.clear_caches()
