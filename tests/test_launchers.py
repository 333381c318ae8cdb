"""Every launcher's --help lists the flags it reads.

absl's --help shows only the key flags of the main module: flags defined in an imported module
(train.py's --workdir, --model.*, --train.* come from l3c_jax.train.config) are hidden unless
the launcher adopts them. The check runs in-process on the flags registry (what --help prints).
"""

import ast
import os
from typing import Set

from absl import flags
import pytest

import launchers

ABSL_LAUNCHERS = ("prepare_images", "prepare_store", "bench_train", "bench_input",
                  "device_check", "check_reference", "train", "sweep")


def _flags_read_by(name: str) -> Set[str]:
  """Flags a launcher defines (DEFINE_*, add_argument) or reads (FLAGS.<name>), from its source."""
  with open(os.path.join(launchers.ROOT, "experiments", f"{name}.py"), encoding="utf-8") as f:
    tree = ast.parse(f.read())
  names = set()
  for node in ast.walk(tree):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        and (node.func.attr.startswith("DEFINE_") or node.func.attr == "add_argument")):
      names.add(node.args[0].value.lstrip("-"))
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id == "FLAGS" and node.attr in flags.FLAGS):
      names.add(node.attr)
  return names


def _listed(flag: str, help_text: str) -> bool:
  return f"--{flag}:" in help_text or f"--[no]{flag}:" in help_text


@pytest.mark.parametrize("name", ABSL_LAUNCHERS)
def test_absl_launcher_help_lists_its_flags(name):
  module = launchers.load(name)
  help_text = flags.FLAGS.module_help(module)
  expected = _flags_read_by(name)
  if name in ("train", "sweep"):  # read through l3c_jax.train.config, not by name
    expected |= {"workdir", "data_dir", "val_dir", "dry_run", "model.num_channels",
                 "train.batch_size", "train.init_from", "train.compute_dtype"}
  assert expected, "no flags found in the source"
  assert not [f for f in sorted(expected) if not _listed(f, help_text)], help_text


def test_bench_codec_help_lists_its_options(capsys):
  with pytest.raises(SystemExit) as exited:
    launchers.load("bench_codec").main(["--help"])
  assert exited.value.code == 0
  help_text = capsys.readouterr().out
  expected = _flags_read_by("bench_codec")
  assert expected and all(f"--{f}" in help_text for f in expected), help_text
