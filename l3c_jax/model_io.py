"""Exported models: a directory with `config.json` and `params.msgpack`, and its fingerprint.

Layout of an exported model directory (written by `save_model`, e.g. by the training loop
into WORKDIR/model/ at every checkpoint):
  config.json     {"config": config.to_dict(), "metadata": {...}, "format": "l3c-jax-model/2"}
                  (the config names its family; "l3c-jax-model/1" files, whose config is one flat
                  L3C config with pyramid flags and no "family" key, still load:
                  `models.families.config_from_dict`)
  params.msgpack  flax.serialization msgpack of the parameter tree (numpy float32 leaves)

`load_model(path)` accepts such a directory or a training workdir that contains `model/`.
The shipped default model lives in `l3c_jax/default_model/` (same layout); the defaults of
earlier releases stay in `l3c_jax/previous_models/<32 hex digits>/` (the first 16 bytes of their
fingerprint, what a file's header names), so that files they wrote still decode without
`--model` after an upgrade (`shipped_model_for`).
"""

import dataclasses
import functools
import hashlib
import json
import os
import re
import socket
import tempfile
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from l3c_jax.models import families

CONFIG_FILE = "config.json"
PARAMS_FILE = "params.msgpack"
EXPORT_FORMAT = "l3c-jax-model/2"  # what save_model writes
READ_FORMATS = ("l3c-jax-model/1", EXPORT_FORMAT)  # what load_model reads
# The container version that fingerprints name, fixed at 2 (see compute_fingerprint).
FINGERPRINT_FORMAT = 2
DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model")
PREVIOUS_MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "previous_models")


class ModelError(ValueError):
  """A model cannot be loaded (missing / corrupt files, mismatching parameters)."""


def _leaves_by_path(params):
  """[(path string, numpy leaf)] sorted by path: the canonical parameter order."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  items = [(jax.tree_util.keystr(path), np.asarray(leaf)) for path, leaf in flat]
  return sorted(items, key=lambda kv: kv[0])


def compute_fingerprint(config, params) -> str:
  """Hex sha256 over FINGERPRINT_FORMAT, what the network computes and its parameters.

  "What the network computes" is the family's `network_spec(config)`, not the config's spelling:
  renaming config fields or moving them between families does not orphan existing files. For
  the families that l3c-jax-model/1 files could hold, it is the set of fields that differ from
  the paper's L3C config in that file format's flat vocabulary (see
  `models.pyramid.RGBPyramidFamily.network_spec`).
  Parameters enter in sorted path order as (path, dtype, shape, little-endian bytes), so the
  fingerprint does not depend on dict order, on numpy vs jax arrays or on the host byte order.
  """
  spec = families.get(config).network_spec(config)
  h = hashlib.sha256()
  h.update(b"l3c-jax model fingerprint\0")
  # Format 2 made the numerics part of what a file names (the numerics byte), so the container
  # version no longer enters: later container versions keep every model's fingerprint.
  h.update(f"format={FINGERPRINT_FORMAT}\0".encode())
  h.update(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode())
  for path, leaf in _leaves_by_path(params):
    leaf = np.ascontiguousarray(leaf)
    h.update(f"\0{path}\0{leaf.dtype.str.lstrip('<>=|')}\0{leaf.shape}\0".encode())
    h.update(leaf.astype(leaf.dtype.newbyteorder("<"), copy=False).tobytes())
  return h.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """A model ready for coding: configuration and parameters (compared by identity).

  Attributes:
    config: the model family's config (e.g. `L3CConfig`).
    params: parameter pytree (as from `init_params` / training), jax or numpy leaves.
  """
  config: Any
  params: Any

  @functools.cached_property
  def fingerprint(self) -> str:
    """Hex sha256 of (weights, config); see `compute_fingerprint`."""
    return compute_fingerprint(self.config, self.params)

  @functools.cached_property
  def exact(self) -> "Model":
    """The form the codec codes with: the same parameters, computing in exact fixed point
    (`models.fixed_point`; itself if already exact). A float-trained model pays a little
    rate for it (its quantization is not trained); `--model.exact=true` fine-tunes it away.

    Raises:
      ModelError: the config cannot compute exactly (e.g. a pixel_mean_scale that is not a
        power of two).
    """
    if self.config.exact:
      return self
    try:
      return Model(self.config.replace(exact=True), self.params)
    except ValueError as e:
      raise ModelError(f"this model has no exact form, so it cannot code files ({e})") from None


def random_model(config, seed: int = 0, broad_heads: bool = True) -> Model:
  """A model with random weights (no compilation), for tests, benchmarks and smoke runs.

  Weights are U(+-1/sqrt(fan_in)) like PyTorch's default init. With `broad_heads`, the
  probability heads' last convs are scaled down and their biases set so that every pixel and
  latent gets a broad distribution centred in its range, as a trained model roughly does; a
  plain random init puts most symbols in the 2^-24 tails (24-bit codes), where the model's
  float estimate and the integer code differ and the coder works atypically. (Even at 2^-20
  the integer tables' one-count floor makes a symbol ~0.1 bit cheaper than the float model
  says, hence pixel scales of e^4: every 8-bit value stays above ~2^-13.)
  """
  gen = np.random.default_rng(seed)

  def draw(leaf):
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else config.num_channels
    bound = 1.0 / np.sqrt(fan_in)
    return gen.uniform(-bound, bound, leaf.shape).astype(np.float32)

  params = jax.tree_util.tree_map(draw, families.param_shapes(config))
  if broad_heads:
    k = config.num_mixtures
    family = families.get(config)
    for name, is_rgb in family.head_names(config):
      out = params[name]["out"]["conv"]
      out["kernel"] *= 0.05
      if is_rgb:
        # pixels: means ~128 (G, B get + x_R / 2, + (x_R + x_G) / 2 by coupling); with
        # residual means, offsets ~0 from the upsampled coarser image.
        bias = np.zeros((4, 3, k), np.float32)
        centre = [0.0, 0.0, 0.0] if family.residual_means(config) else [128.0, 64.0, 0.0]
        bias[1] = np.array(centre)[:, None] + np.linspace(-10, 10, k)
        bias[1] /= config.pixel_mean_scale
        bias[2] = 4.0
      else:  # latents: means ~0 in [-1, 1], scale e^-1
        bias = np.zeros((3, config.latent_channels, k), np.float32)
        bias[1] = np.linspace(-0.2, 0.2, k)
        bias[2] = -1.0
      out["bias"] = bias.reshape(-1)
  return Model(config=config, params=jax.tree_util.tree_map(jnp.asarray, params))


# Temporary files of `atomic_write`: ".<name>.<pid>@<host>.<random>.l3c-tmp" in the target's
# directory. The pid and a hash of the host name say who owns one, so a later write can tell a
# leftover of a killed process (SIGKILL / power loss between writing and renaming, which no
# cleanup handler sees) from a write in progress, and remove only the former.
TEMP_SUFFIX = ".l3c-tmp"
_TEMP_RE = re.compile(r"^\..*\.(?P<pid>\d+)@(?P<host>[0-9a-f]{8})\.[^.]+" + re.escape(TEMP_SUFFIX)
                      + "$")
_MAX_TEMP_STEM_CHARS = 100  # keeps temp names under NAME_MAX (255) for long target names


def _host_tag() -> str:
  return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by another user
    return True
  except OverflowError:  # not a pid this system can have
    return False
  return True


def remove_stale_temps(directory: str) -> list:
  """Removes `atomic_write` temporaries in `directory` left by dead processes of this host.

  Temporaries of live processes (writes in progress) and of other hosts (a shared file system)
  are kept; a pid reused by a live process keeps its leftover until that process ends.

  Returns:
    the removed file names.
  """
  host, removed = _host_tag(), []
  try:
    entries = list(os.scandir(directory))
  except OSError:
    return removed
  for entry in entries:
    if not entry.name.endswith(TEMP_SUFFIX):
      continue
    m = _TEMP_RE.match(entry.name)
    if m is None or m.group("host") != host or _pid_alive(int(m.group("pid"))):
      continue
    try:
      os.unlink(entry.path)
      removed.append(entry.name)
    except OSError:  # removed by another writer meanwhile, or not ours to remove
      pass
  return removed


def atomic_write(path: str, data: bytes) -> None:
  """Writes `data` to `path` via a temporary file in the same directory and os.replace, so
  readers see the old file or the complete new one, never a partial file.

  The temporary's name says which process owns it (see TEMP_SUFFIX); leftovers of dead
  processes in the directory are removed first.
  """
  directory = os.path.dirname(os.path.abspath(path))
  remove_stale_temps(directory)
  stem = os.path.basename(path)[:_MAX_TEMP_STEM_CHARS]
  fd, tmp = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}@{_host_tag()}.",
                             suffix=TEMP_SUFFIX, dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def save_model(directory: str, config, params,
               metadata: Optional[Mapping[str, Any]] = None) -> str:
  """Exports a model to `directory` (created if needed); each file is replaced atomically.

  The parameters are written first and the config last, so a reader never pairs a new
  config with old parameters of a different shape without noticing (shapes are checked).

  Args:
    directory: output directory.
    config: model configuration.
    params: parameter pytree (jax or numpy leaves; stored as numpy).
    metadata: optional JSON-serializable info (training step, bpsp, data, ...).
  Returns:
    The directory.
  """
  os.makedirs(directory, exist_ok=True)
  np_params = jax.tree_util.tree_map(lambda a: np.asarray(a), params)
  atomic_write(os.path.join(directory, PARAMS_FILE), serialization.msgpack_serialize(
      serialization.to_state_dict(np_params)))
  doc = {"format": EXPORT_FORMAT, "config": config.to_dict(),
         "metadata": dict(metadata or {}),
         "fingerprint": compute_fingerprint(config, np_params)}
  atomic_write(os.path.join(directory, CONFIG_FILE),
                (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
  return directory


def _resolve(path: str) -> str:
  """The exported-model directory for an export dir or a training workdir."""
  if os.path.isfile(os.path.join(path, CONFIG_FILE)):
    return path
  if os.path.isfile(os.path.join(path, "model", CONFIG_FILE)):
    return os.path.join(path, "model")
  if not os.path.isdir(path):
    raise ModelError(f"model directory {path} does not exist")
  raise ModelError(f"no model in {path} (expected {CONFIG_FILE} and {PARAMS_FILE}, "
                   "or a training workdir with an exported model/)")


def read_metadata(path: str) -> dict:
  """The metadata dict stored with an exported model (empty if none)."""
  with open(os.path.join(_resolve(path), CONFIG_FILE), "rb") as f:
    return dict(json.loads(f.read()).get("metadata") or {})


def load_model(path: str) -> Model:
  """Loads an exported model directory, or the exported model inside a training workdir.

  Raises:
    ModelError: with a one-line message if files are missing, unreadable or inconsistent.
  """
  directory = _resolve(os.fspath(path))
  try:
    with open(os.path.join(directory, CONFIG_FILE), "rb") as f:
      doc = json.loads(f.read())
    if doc.get("format", EXPORT_FORMAT) not in READ_FORMATS:
      raise ModelError(f"{os.path.join(directory, CONFIG_FILE)} is a model of format "
                       f"{doc['format']!r}; this l3c-jax reads {', '.join(READ_FORMATS)} "
                       "(upgrade l3c-jax)")
    config = families.config_from_dict(doc["config"])
  except ModelError:
    raise
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ModelError(f"cannot read {os.path.join(directory, CONFIG_FILE)}: "
                     f"{type(e).__name__}: {e}") from None
  params_path = os.path.join(directory, PARAMS_FILE)
  try:
    with open(params_path, "rb") as f:
      state = serialization.msgpack_restore(f.read())
  except FileNotFoundError:
    raise ModelError(f"missing {params_path}") from None
  except Exception as e:  # msgpack raises a variety of types on corrupt input
    raise ModelError(f"cannot read {params_path}: {type(e).__name__}") from None
  params = _check_params(state, config, params_path)
  return Model(config=config, params=jax.tree_util.tree_map(jnp.asarray, params))


def _check_params(state, config, where: str):
  """Checks the restored tree against the config's parameter shapes; returns numpy params."""
  expected = families.param_shapes(config)
  exp_leaves = dict(_shape_items(expected))
  try:
    got_leaves = dict((k, np.asarray(v)) for k, v in _leaves_by_path(state))
  except Exception:
    raise ModelError(f"cannot read {where}: not a parameter tree") from None
  if set(exp_leaves) != set(got_leaves):
    missing = sorted(set(exp_leaves) - set(got_leaves))
    extra = sorted(set(got_leaves) - set(exp_leaves))
    raise ModelError(f"{where} does not match config.json ({len(missing)} missing, "
                     f"{len(extra)} unexpected parameters, e.g. "
                     f"{(missing or extra)[0]})")
  for k, (shape, dtype) in exp_leaves.items():
    v = got_leaves[k]
    if v.shape != shape or v.dtype != dtype:
      raise ModelError(f"{where}: parameter {k} has shape {v.shape} {v.dtype}, "
                       f"config.json implies {shape} {dtype}")
  return jax.tree_util.tree_unflatten(
      jax.tree_util.tree_structure(expected),
      [got_leaves[jax.tree_util.keystr(p)] for p, _ in
       jax.tree_util.tree_flatten_with_path(expected)[0]])


def _shape_items(tree):
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    yield jax.tree_util.keystr(path), (tuple(leaf.shape), np.dtype(leaf.dtype))


@functools.lru_cache(maxsize=1)
def _load_default() -> Model:
  if not os.path.isfile(os.path.join(DEFAULT_MODEL_DIR, CONFIG_FILE)):
    raise ModelError("no default model is shipped with this installation "
                     "(l3c_jax/default_model/ is missing); pass a model directory "
                     "(--model DIR, or model=l3c_jax.load_model(DIR))")
  return load_model(DEFAULT_MODEL_DIR)


def load_default_model() -> Model:
  """The shipped default model (`l3c_jax/default_model/`), loaded once per process.

  Raises:
    ModelError: if no default model is shipped.
  """
  return _load_default()


@functools.lru_cache(maxsize=4)
def _load_previous(name: str) -> Model:
  model = load_model(os.path.join(PREVIOUS_MODELS_DIR, name))
  if not model.fingerprint.startswith(name):
    raise ModelError(f"shipped model previous_models/{name} has fingerprint "
                     f"{model.fingerprint[:len(name)]} (the installation is damaged)")
  return model


def shipped_model_for(fingerprint: bytes) -> Model:
  """The shipped model that a file names: the default model, or the earlier release's default
  whose fingerprint starts with these bytes (`l3c_jax/previous_models/`), loaded once.

  Args:
    fingerprint: a file header's model fingerprint (its first 16 bytes).
  Returns:
    That model; the default model when no shipped model matches (decoding with it then fails
    with the codec's "different model" message, which names both fingerprints).
  Raises:
    ModelError: no default model is shipped, or a previous model's files are damaged.
  """
  default = load_default_model()
  name = bytes(fingerprint).hex()
  if not name or default.fingerprint.startswith(name):
    return default
  if os.path.isdir(os.path.join(PREVIOUS_MODELS_DIR, name)):
    return _load_previous(name)
  return default
