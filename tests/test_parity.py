"""Parity of l3c-jax with the official L3C-PyTorch code on the copied tiny fixture.

The same check as `experiments/check_reference.py` (l3c_jax/reference_check.py): official weights
imported with `convert.import_official`, our forward pass on two astronaut crops, and then symbols
(exact), per-scale bits (1e-4 relative) and head outputs (1e-4 absolute) compared.
"""

import json
import shutil

import jax
import numpy as np
import pytest

from l3c_jax import convert
from l3c_jax import reference_check
from l3c_jax.models.config import REFERENCE_TINY
from l3c_jax.models.families import param_shapes

FIXTURE = "l3c_pytorch_tiny"


@pytest.fixture(scope="module")
def report(testdata_dir):
  return reference_check.check_reference(str(testdata_dir / FIXTURE))


def test_reference_fixture_parity_holds(report):
  assert report.ok, reference_check.format_report(report)
  assert [c.case for c in report.cases] == ["x_64x96", "x_40x56"]
  for case in report.cases:
    assert [r.scale for r in case.scales] == ["x", "z1", "z2", "z3"]
    assert all(r.symbols_equal for r in case.scales[1:])
    assert all(r.rel_diff < 1e-5 for r in case.scales)
    assert case.max_abs_head_diff < 1e-5
    assert len(case.heads_compared) >= 2                 # heads really were compared element-wise
    assert abs(case.ours_bpsp - case.official_bpsp) / case.official_bpsp < 1e-5


def test_reference_report_formats_a_table(report):
  text = reference_check.format_report(report)
  assert "ours bits" in text and "official bits" in text and "symbols equal" in text
  assert text.rstrip().endswith("PASS")


def test_reference_check_detects_tampered_fixture(testdata_dir, tmp_path):
  """Flipping one symbol and shifting one scale's official bits by 1e-3 must both fail."""
  src = testdata_dir / FIXTURE
  for name in ("weights_tiny.npz", "inputs.npz"):
    shutil.copy(src / name, tmp_path / name)
  with np.load(src / "expected.npz") as f:
    arrays = {k: f[k] for k in f.files}
  s2 = arrays["x_40x56/S2"].copy()
  s2[0, 1, 2, 3] = (s2[0, 1, 2, 3] + 1) % 25
  arrays["x_40x56/S2"] = s2
  np.savez(tmp_path / "expected.npz", **arrays)
  expected = json.loads((src / "expected.json").read_text())
  expected["cases"]["x_64x96"]["bits_z1_given_f2"] *= 1.001
  (tmp_path / "expected.json").write_text(json.dumps(expected))

  bad = reference_check.check_reference(str(tmp_path))
  assert not bad.ok
  assert any("x_40x56 S2: 1 symbols differ" in f for f in bad.failures), bad.failures
  assert any(f.startswith("x_64x96 z1: bits rel diff") for f in bad.failures), bad.failures
  assert "FAIL" in reference_check.format_report(bad)


def test_imported_official_weights_fill_exactly_our_parameter_tree(testdata_dir):
  params, cfg = convert.import_official(str(testdata_dir / FIXTURE / "weights_tiny.npz"))
  assert cfg == REFERENCE_TINY
  shapes = param_shapes(cfg)
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(shapes)
  for p, s in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(shapes)):
    assert p.shape == s.shape and p.dtype == s.dtype
