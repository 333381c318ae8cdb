"""A 2-member sweep step equals two separate runs, in both execution modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax.models import L3CConfig
from l3c_jax.train import ensemble, step as step_lib
from l3c_jax.train.config import TrainConfig

TINY = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)


def _batches(n):
  rng = np.random.default_rng(3)
  return [jnp.asarray(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)) for _ in range(n)]


# Slow: ~50 s each here.
@pytest.mark.parametrize("mode", ["loop", "vmap"])
@pytest.mark.slow
def test_sweep_members_equal_separate_runs(mode):
  tx = step_lib.make_optimizer(TrainConfig(learning_rate=1e-3), 100)
  seeds, lrs = [0, 1], [1.0, 2.0]
  ws = jnp.asarray([[1.0, 1.0, 1.0], [1.0, 0.5, 0.25]])
  sigmas = jnp.asarray([2.0, 1.0])
  states = ensemble.create_states(TINY, tx, seeds, lrs)
  sweep = jax.jit(ensemble.make_sweep_step(TINY, tx, 2, mode))
  single = jax.jit(lambda s, x, w, sg: step_lib.train_step(s, x, TINY, tx, w, sg))
  separate = [step_lib.create_train_state(TINY, tx, jax.random.key(s), lr)
              for s, lr in zip(seeds, lrs)]
  for x in _batches(2):
    states, m = sweep(states, x, ws, sigmas)
    outs = [single(separate[i], x, ws[i], sigmas[i]) for i in range(2)]
    separate = [o[0] for o in outs]
    for i in range(2):
      np.testing.assert_allclose(float(m["loss"][i]), float(outs[i][1]["loss"]), rtol=1e-5)
  for i in range(2):
    for a, b in zip(jax.tree_util.tree_leaves(ensemble.unstack(states, i).params),
                    jax.tree_util.tree_leaves(separate[i].params)):
      # vmap turns the convs into grouped convs (other summation order); RMSprop divides by
      # sqrt(v), so 1-ulp gradient noise shows up at ~1e-6 in the updated weights; without
      # LLVM's optimizations (tests/conftest.py) one weight in 400 moved by 4e-5 (of ~0.05).
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
  # The members really differ (different seeds and hyper-parameters).
  p0 = jax.tree_util.tree_leaves(ensemble.unstack(states, 0).params)[0]
  p1 = jax.tree_util.tree_leaves(ensemble.unstack(states, 1).params)[0]
  assert not np.allclose(np.asarray(p0), np.asarray(p1))


@pytest.mark.slow  # 29 s in CI; test_sweep covers freezing end to end (slow too)
def test_frozen_member_keeps_its_state():
  """active=False (a diverged or padding member) masks the member's update off entirely."""
  tx = step_lib.make_optimizer(TrainConfig(learning_rate=1e-3), 100)
  states = ensemble.create_states(TINY, tx, [0, 1], [1.0, 1.0])
  before = jax.tree_util.tree_map(np.asarray, states)
  sweep = jax.jit(ensemble.make_sweep_step(TINY, tx, 2, "loop"))
  ws, sigmas = jnp.ones((2, 3)), jnp.asarray([2.0, 2.0])
  after, m = sweep(states, _batches(1)[0], ws, sigmas, jnp.asarray([True, False]))
  for a, b in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(before)):
    np.testing.assert_array_equal(np.asarray(a)[1], b[1])  # frozen: untouched
  assert int(after.step[0]) == 1 and int(after.step[1]) == 0
  p0 = [np.asarray(a)[0] for a in jax.tree_util.tree_leaves(after.params)]
  assert any(not np.array_equal(a, b[0])
             for a, b in zip(p0, jax.tree_util.tree_leaves(before.params)))
  assert float(m["loss"][1]) == 0.0 and float(m["loss"][0]) > 0.0
