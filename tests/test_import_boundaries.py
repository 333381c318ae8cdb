"""Module layering of l3c_jax, checked statically with `ast` (no imports run).

This docstring is where the layering is written down.

Rules:
  * `l3c_jax/data/*` imports neither jax nor flax (nor anything built on them, nor other l3c_jax
    subpackages): loaders must run in worker threads without a device.
  * only `l3c_jax/coding/entropy.py` imports constriction.
  * `l3c_jax/models/*` and `l3c_jax/likelihood/*` (the pure, jitted core) import none of
    constriction, orbax, optax, PIL, l3c_jax.coding, l3c_jax.train, l3c_jax.data.
Files that do not exist yet are simply not checked; the rules apply to whatever exists.
"""

import ast
import pathlib
from typing import Dict, List, Set

import pytest

PACKAGE = "l3c_jax"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

JAX_FAMILY = {"jax", "jaxlib", "flax", "optax", "orbax", "chex"}
CORE_FORBIDDEN = {"constriction", "orbax", "optax", "PIL",
                  "l3c_jax.coding", "l3c_jax.train", "l3c_jax.data"}


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = list(path.relative_to(root).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def imported_modules(path: pathlib.Path, root: pathlib.Path) -> Set[str]:
  """Absolute names of every module a file imports (incl. `from a import b` -> a and a.b).

  Relative imports are resolved against the file's package; `importlib.import_module("x")` and
  `__import__("x")` with a literal name count too.
  """
  tree = ast.parse(path.read_text(), filename=str(path))
  module = _module_name(path, root)
  package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
  names: Set[str] = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package[:len(package) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
      else:
        prefix = node.module
      names.add(prefix)
      names.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
    elif isinstance(node, ast.Call):
      fn = node.func
      fn_name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
      if (fn_name in ("import_module", "__import__") and node.args
          and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        names.add(node.args[0].value)
  return names


def _matches(name: str, forbidden: str) -> bool:
  return name == forbidden or name.startswith(forbidden + ".")


def find_violations(root: pathlib.Path) -> List[str]:
  """All layering violations under root/l3c_jax, as 'file: imports X (rule)' strings."""
  violations = []
  pkg_dir = root / PACKAGE
  for path in sorted(pkg_dir.rglob("*.py")):
    rel = path.relative_to(root).as_posix()
    mods = imported_modules(path, root)
    sub = path.relative_to(pkg_dir).parts
    for name in sorted(mods):
      if _matches(name, "constriction") and rel != "l3c_jax/coding/entropy.py":
        violations.append(f"{rel}: imports {name} (only l3c_jax/coding/entropy.py may)")
      if sub[0] == "data" and len(sub) > 1:
        if any(_matches(name, m) for m in JAX_FAMILY):
          violations.append(f"{rel}: imports {name} (l3c_jax/data must not import jax/flax)")
        if _matches(name, PACKAGE) and name != PACKAGE and not _matches(name, "l3c_jax.data"):
          violations.append(f"{rel}: imports {name} (l3c_jax/data may only import l3c_jax.data)")
      if sub[0] in ("models", "likelihood") and len(sub) > 1:
        for forbidden in CORE_FORBIDDEN:
          if _matches(name, forbidden) and not _matches(name, "constriction"):
            violations.append(f"{rel}: imports {name} (pure core must not import {forbidden})")
  return violations


def test_l3c_jax_respects_import_boundaries():
  assert (REPO_ROOT / PACKAGE / "__init__.py").exists()
  violations = find_violations(REPO_ROOT)
  assert not violations, "\n".join(violations)


def test_imported_modules_sees_core_imports():
  # Guards against a scanner that silently sees nothing.
  mods = imported_modules(REPO_ROOT / "l3c_jax/models/l3c.py", REPO_ROOT)
  assert "flax.linen" in mods and "jax" in mods and "l3c_jax.models.layers" in mods


def _write_tree(root: pathlib.Path, files: Dict[str, str]):
  for rel, text in files.items():
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.mark.parametrize("rel,source", [
    ("l3c_jax/data/loader.py", "import jax.numpy as jnp\n"),
    ("l3c_jax/data/loader.py", "from flax import linen\n"),
    ("l3c_jax/data/loader.py", "from l3c_jax.models import l3c\n"),
    ("l3c_jax/data/loader.py", "from ..models import l3c\n"),
    ("l3c_jax/coding/codec.py", "import constriction\n"),
    ("l3c_jax/losses.py", "from constriction.stream import queue\n"),
    ("l3c_jax/models/l3c.py", "import optax\n"),
    ("l3c_jax/models/l3c.py", "import orbax.checkpoint as ocp\n"),
    ("l3c_jax/likelihood/pmf.py", "from PIL import Image\n"),
    ("l3c_jax/likelihood/pmf.py", "from l3c_jax import coding\n"),
    ("l3c_jax/models/l3c.py", "from l3c_jax.train import step\n"),
    ("l3c_jax/models/l3c.py", "from .. import data\n"),
    ("l3c_jax/models/l3c.py", "import importlib\nimportlib.import_module('constriction')\n"),
])
def test_find_violations_catches_forbidden_import(tmp_path, rel, source):
  _write_tree(tmp_path, {"l3c_jax/__init__.py": "", "l3c_jax/data/__init__.py": "",
                         "l3c_jax/coding/entropy.py": "import constriction\n", rel: source})
  violations = find_violations(tmp_path)
  assert violations and all(v.startswith(rel + ":") for v in violations), violations


def test_find_violations_allows_permitted_imports(tmp_path):
  _write_tree(tmp_path, {
      "l3c_jax/__init__.py": "",
      "l3c_jax/coding/entropy.py": "import constriction\nimport numpy as np\n",
      "l3c_jax/data/loader.py": "import numpy as np\nfrom PIL import Image\nfrom . import augment\n"
                                "from l3c_jax.data import augment\nimport l3c_jax\n",
      "l3c_jax/models/l3c.py": "import jax\nimport flax.linen as nn\nfrom . import layers\n",
      "l3c_jax/likelihood/dmll.py": "import jax.numpy as jnp\n",
      "l3c_jax/train/loop.py": "import optax\nimport orbax.checkpoint\nfrom l3c_jax import data\n",
  })
  assert find_violations(tmp_path) == []
