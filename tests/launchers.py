"""The launchers of experiments/, imported and run inside the test process.

A launcher defines its absl flags when it is imported, and absl refuses to define a flag twice,
so every test imports launchers through `load`: once per process, under one module name each.
"""

import importlib.util
import os
import sys

from absl import flags
from absl.testing import flagsaver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name: str):
  """Imports experiments/<name>.py (once per process) and returns the module."""
  mod_name = f"l3c_experiments_{name}"
  if mod_name not in sys.modules:
    # As `python experiments/<name>.py` would: its folder on sys.path for the sibling flag
    # modules it imports (figure_flags, eval_flags, model_flags).
    experiments_dir = os.path.join(ROOT, "experiments")
    if experiments_dir not in sys.path:
      sys.path.insert(0, experiments_dir)
    spec = importlib.util.spec_from_file_location(
        mod_name, os.path.join(ROOT, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, so absl files its flags under this module's name (as the key
    # flags that `--help` lists), not under importlib's.
    sys.modules[mod_name] = module
    try:
      spec.loader.exec_module(module)
    except BaseException:
      del sys.modules[mod_name]
      raise
  return sys.modules[mod_name]


def run_main(name: str, *args: str):
  """Runs experiments/<name>.py's absl `main` with command-line flags `args`.

  The flags are parsed from their defaults and restored afterwards, so runs do not leak settings
  into each other.

  Returns:
    What main returned.
  """
  module = load(name)
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS([f"{name}.py", *args])
    return module.main([f"{name}.py"])
