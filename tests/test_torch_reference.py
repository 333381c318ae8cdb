"""experiments/torch_reference.py, the PyTorch baseline of the training benchmark (needs torch).

Checks that it is the same model as l3c-jax: the same parameter count (so both do the same
FLOPs), the official outputs on the copied tiny fixture, and the same loss and gradients as
l3c-jax on the same weights.
"""

import json
import pathlib
import sys

import jax
import numpy as np
import pytest

from l3c_jax import convert
from l3c_jax.models.config import L3CConfig, PAPER, REFERENCE_TINY
from l3c_jax.models.families import param_shapes
from l3c_jax.train import step as step_lib

torch = pytest.importorskip("torch")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "experiments"))
import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position

FIXTURE = "l3c_pytorch_tiny"


def _count_from_shapes(config):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(param_shapes(config)))


def _numpy_state_dict(model, tensors=None):
  """Official-style numpy state dict; `tensors` maps names to replacements (e.g. gradients)."""
  out = {}
  for name, value in model.state_dict().items():
    value = tensors.get(name, value) if tensors else value
    out[name] = value.detach().cpu().numpy()
  return out


@pytest.mark.parametrize("config", [REFERENCE_TINY, PAPER], ids=["reference_tiny", "paper"])
def test_torch_reference_param_count_matches_ours(config):
  # Both counts come from shapes only (torch meta device, jax.eval_shape): nothing is allocated.
  assert torch_reference.count_params(config) == _count_from_shapes(config)


def test_torch_reference_param_count_paper_is_5008395():
  assert torch_reference.count_params(PAPER) == 5_008_395


def test_torch_reference_param_count_tiny_config(tiny_config):
  assert torch_reference.count_params(tiny_config) == _count_from_shapes(tiny_config)


def test_torch_reference_loss_is_finite_on_random_batch(tiny_config):
  torch.manual_seed(0)
  model = torch_reference.TorchL3C(tiny_config)
  x = torch.randint(0, 256, (2, 3, 16, 16)).float()
  loss, metrics = model.loss(x)
  assert torch.isfinite(loss)
  assert loss.item() > 0
  assert set(metrics) == {"bpsp_x", "bpsp_z1", "bpsp_z2"}


def test_torch_reference_train_step_changes_params(tiny_config):
  model, step = torch_reference.make_train_step(tiny_config)
  before = [p.detach().clone() for p in model.parameters()]
  loss = step(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
  assert np.isfinite(loss)
  assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_torch_reference_reproduces_official_fixture(testdata_dir):
  fixture = testdata_dir / FIXTURE
  weights = np.load(fixture / "weights_tiny.npz")
  expected = np.load(fixture / "expected.npz")
  cases = json.loads((fixture / "expected.json").read_text())["cases"]
  model = torch_reference.TorchL3C(REFERENCE_TINY)
  # The official dict stores the levels twice (`enc.levels` is `enc.q.levels`); we keep one.
  model.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files
                         if not k.endswith(".q.levels")})
  case = "x_40x56"
  x = torch.from_numpy(np.load(fixture / "inputs.npz")[case]).permute(2, 0, 1)[None].float()
  with torch.no_grad():
    symbols, _, heads = model(x, train=False)
    _, metrics = model.loss(x, train=False)
  for s in range(3):
    np.testing.assert_array_equal(symbols[s].numpy(), expected[f"{case}/S{s + 1}"])
  np.testing.assert_allclose(heads[1].numpy(), expected[f"{case}/P1"], atol=1e-4)
  reported = cases[case]["bpsp_per_scale_reported"]
  for key in ("x", "z1", "z2"):
    assert metrics[f"bpsp_{key}"].item() == pytest.approx(reported[key], rel=1e-5)


def test_torch_reference_loss_and_grads_match_l3c_jax():
  # Two scales keep the compile short and still cover the latent head, fusion and the STE.
  config = L3CConfig(num_scales=2, num_channels=8, num_res_blocks=1, latent_channels=2,
                     num_mixtures=2)
  torch.manual_seed(1)
  model = torch_reference.TorchL3C(config)
  x = np.random.default_rng(0).integers(0, 256, (2, 8, 12, 3)).astype(np.uint8)
  loss_t, _ = model.loss(torch.from_numpy(x).permute(0, 3, 1, 2).float())
  loss_t.backward()
  grads_sd = _numpy_state_dict(model, {n: p.grad for n, p in model.named_parameters()})
  params, _ = convert.convert_state_dict(_numpy_state_dict(model))
  expected_grads, _ = convert.convert_state_dict(grads_sd)
  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda p, v: step_lib.loss_fn(p, v, config), has_aux=True))
  (loss_j, _), grads_j = loss_and_grad(params, x)
  assert float(loss_j) == pytest.approx(loss_t.item(), rel=1e-5)
  flat_expected = jax.tree_util.tree_leaves_with_path(expected_grads)
  flat_j = dict(jax.tree_util.tree_leaves_with_path(grads_j))
  assert len(flat_expected) == len(flat_j)
  for path, g_t in flat_expected:
    g_j = np.asarray(flat_j[path])
    scale = max(float(np.max(np.abs(g_t))), 1e-6)
    np.testing.assert_allclose(g_j, g_t, atol=1e-4 * scale, err_msg=jax.tree_util.keystr(path))
