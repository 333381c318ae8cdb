"""Data-parallel training: a 4-device step equals the 1-device step on the same global batch."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = textwrap.dedent("""
  import jax, jax.numpy as jnp, numpy as np
  from l3c_jax.models import L3CConfig
  from l3c_jax.train import loop, step as step_lib
  from l3c_jax.train.config import TrainConfig
  assert jax.device_count() == 4, jax.devices()
  cfg = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)
  tx = step_lib.make_optimizer(TrainConfig(learning_rate=1e-3), 100)
  x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
  f = jax.jit(lambda s, b: step_lib.train_step(s, b, cfg, tx))
  # one device
  s1 = jax.device_put(step_lib.create_train_state(cfg, tx, jax.random.key(0)), jax.devices()[0])
  s1, m1 = f(s1, jax.device_put(x, jax.devices()[0]))
  # four devices: batch sharded, parameters replicated (what train.py does)
  mesh = loop.make_mesh()
  s4 = loop.replicate(step_lib.create_train_state(cfg, tx, jax.random.key(0)), mesh)
  xb = loop.shard_batch(x, mesh)
  assert len(xb.sharding.device_set) == 4
  s4, m4 = f(s4, xb)
  np.testing.assert_allclose(float(m1["loss"]), float(m4["loss"]), rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(s1.params), jax.tree_util.tree_leaves(s4.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  print("OK", float(m1["loss"]), float(m4["loss"]))
""")


def test_four_device_step_equals_one_device_step():
  # A subprocess on purpose: the four CPU devices come from XLA_FLAGS, which XLA reads once when
  # the backend starts; this test process already runs with one device.
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  r = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                     timeout=300, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "OK" in r.stdout
