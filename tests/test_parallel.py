"""Data-parallel training: a 4-device step on the paper's batch 30 (padded to 32 rows, the padding
weighted 0) equals the 1-device step on the same 30 crops."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = textwrap.dedent("""
  import jax, jax.numpy as jnp, numpy as np
  from l3c_jax.models import L3CConfig
  from l3c_jax.train import distributed, step as step_lib
  from l3c_jax.train.config import TrainConfig
  assert jax.device_count() == 4, jax.devices()
  cfg = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)
  tx = step_lib.make_optimizer(TrainConfig(learning_rate=1e-3), 100)
  # The paper's batch 30: not a multiple of 4 devices.
  x = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
  # one device, the batch as it is
  f1 = jax.jit(lambda s, b: step_lib.train_step(s, b, cfg, tx))
  s1 = jax.device_put(step_lib.create_train_state(cfg, tx, jax.random.key(0)), jax.devices()[0])
  s1, m1 = f1(s1, jax.device_put(x, jax.devices()[0]))
  # four devices: 32 rows (2 padding rows of weight 0) sharded, parameters replicated (what
  # the training loop does)
  mesh = distributed.make_mesh()
  layout = distributed.batch_layout(mesh, 30)
  assert (layout.padded_size, layout.padding) == (32, 2), layout
  xb = distributed.shard(x[np.asarray(layout.plan_rows)], layout, mesh)
  wb = distributed.shard(layout.weights(), layout, mesh)
  assert len(xb.sharding.device_set) == 4 and xb.shape == (32, 16, 16, 3)
  f4 = jax.jit(lambda s, b, w: step_lib.train_step(s, b, cfg, tx, example_weights=w))
  s4 = distributed.replicate(step_lib.create_train_state(cfg, tx, jax.random.key(0)), mesh)
  s4, m4 = f4(s4, xb, wb)
  for k in ("loss", "bpsp", "grad_norm"):
    np.testing.assert_allclose(float(m4[k]), float(m1[k]), rtol=2e-5, err_msg=k)
  for a, b in zip(jax.tree_util.tree_leaves(s1.params), jax.tree_util.tree_leaves(s4.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  print("OK", float(m1["loss"]), float(m4["loss"]))
""")


# 39 s in CI; test_multidevice checks the padding rows by default
@pytest.mark.slow
def test_four_device_step_on_batch_30_equals_one_device_step():
  # A subprocess on purpose: the four CPU devices come from XLA_FLAGS, which XLA reads once when
  # the backend starts; this test process already runs with one device.
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  r = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                     timeout=900, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "OK" in r.stdout
