"""README.md's commands work: its Python snippet runs, and CI runs its test command."""

import os
import re
from typing import List

import numpy as np
from PIL import Image

from l3c_jax import api
from l3c_jax import model_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the snippet reads, and what the test puts in its place.
SNIPPET_IMAGE = '"photo.png"'
SNIPPET_MODEL = 'l3c_jax.load_model("runs/my_run")'


def _read(path: str) -> str:
  with open(os.path.join(ROOT, path), encoding="utf-8") as f:
    return f.read()


def code_blocks(markdown: str, language: str = "") -> List[str]:
  """Bodies of the fenced code blocks tagged `language` ('' for untagged), in order."""
  return re.findall(rf"^```{re.escape(language)}\n(.*?)^```", markdown, re.DOTALL | re.MULTILINE)


def section(markdown: str, heading: str) -> str:
  """The text under '## heading' up to the next heading of that level."""
  match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown,
                    re.DOTALL | re.MULTILINE)
  assert match, f"README.md has no section '## {heading}'"
  return match.group(1)


def test_using_it_snippet_runs(tmp_path, np_rng, tiny_config, tiny_params, monkeypatch):
  snippets = code_blocks(section(_read("README.md"), "Using it"), "python")
  assert snippets, "no ```python block under '## Using it'"
  code = "\n".join(snippets)
  assert code.count(SNIPPET_IMAGE) == 1 and code.count(SNIPPET_MODEL) == 1, (
      "the snippet changed: update what this test substitutes")
  photo = tmp_path / "photo.png"
  Image.fromarray(np_rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(photo)
  model_dir = tmp_path / "my_run"
  model_io.save_model(str(model_dir), tiny_config, tiny_params)
  # The shipped default model takes ~10 s to compile here; the tiny one stands in for it (the
  # default model itself is tested in tests/test_codec.py).
  tiny = model_io.load_model(str(model_dir))
  monkeypatch.setattr(api, "load_default_model", lambda: tiny)
  code = code.replace(SNIPPET_IMAGE, repr(str(photo)))
  code = code.replace(SNIPPET_MODEL, f"l3c_jax.load_model({str(model_dir)!r})")
  namespace = {}
  exec(compile(code, "README.md (Using it)", "exec"), namespace)  # pylint: disable=exec-used
  assert isinstance(namespace["data"], bytes) and namespace["data"]


def _test_command_of(script: str) -> str:
  """The one line of a shell script that runs pytest."""
  commands = [line.strip() for line in script.splitlines()
              if re.match(r"\s*(python3? -m )?pytest\b", line)]
  assert len(commands) == 1, commands
  return commands[0]


def test_ci_runs_the_readme_test_command():
  readme = _read("README.md")
  top = readme.split("\n## ", 1)[0]  # the commands a reader meets first, before any section
  readme_command = _test_command_of("\n".join(code_blocks(top)))
  assert readme_command == "python -m pytest -q"
  assert _test_command_of(_read(".ci/run")) == readme_command
