"""The persistent XLA compilation cache shared by the command line and training.

Compiling the codec's functions takes ~2 s per run, the paper's train step ~37 s; with the cache
a repeated run loads the executables instead. Directory: $L3C_JAX_CACHE_DIR, else
$XDG_CACHE_HOME/l3c-jax/xla (~/.cache/l3c-jax/xla); L3C_JAX_CACHE_DIR=off disables it. A cached
executable is the compiled code itself, so results are identical with or without it.
"""

import os
from typing import Optional


def directory() -> Optional[str]:
  """The cache directory this process would use (None: disabled)."""
  path = os.environ.get("L3C_JAX_CACHE_DIR")
  if path is None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "l3c-jax", "xla")
  if not path or path == "off":
    return None
  return path


def enable() -> Optional[str]:
  """Turns the cache on (unless disabled or already configured); returns its directory."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_compilation_cache_dir:  # the user configured one
    return jax.config.jax_compilation_cache_dir
  path = directory()
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  return path
