"""Sweeps: N members with stacked parameters trained by one jitted step.

Members may differ only in shape-preserving settings: seed (initialization), learning-rate
scale, per-scale loss weights and quantizer sigma. States are stacked on a leading member axis.
Two execution modes give the same numbers:
  * 'vmap': `jax.vmap` over members (batched convolutions; the right choice on GPU/TPU).
  * 'loop': a Python-unrolled loop over members inside one `jit`. XLA:CPU turns batched weights
    into grouped convolutions that run 2-3x slower than separate ones (measured,
    docs/measurements.md#training-step), so this is the CPU default.
"""

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from l3c_jax.train import step as step_lib


def stack(trees: Sequence):
  """List of identically shaped pytrees -> one pytree with a leading member axis."""
  return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, i: int):
  """Member i of a stacked pytree."""
  return jax.tree_util.tree_map(lambda x: x[i], tree)


def default_mode() -> str:
  return "loop" if jax.default_backend() == "cpu" else "vmap"


def create_states(cfg, tx: optax.GradientTransformation, seeds: Sequence[int],
                  lr_scales: Sequence[float]):
  """Stacked TrainStates, member i initialized from seed i with learning-rate scale i."""
  states = [step_lib.create_train_state(cfg, tx, jax.random.key(s), lr)
            for s, lr in zip(seeds, lr_scales)]
  return stack(states)


def make_sweep_step(cfg, tx: optax.GradientTransformation, num_members: int,
                    mode: str = "auto", dtype: Optional[str] = None) -> Callable:
  """Returns step(states, x, scale_weights [N, S], soft_sigmas [N]) -> (states, metrics [N]).

  All members see the same batch x. Not jitted; wrap it in `jax.jit`. dtype: the compute
  dtype name (`step_lib.train_step`).
  """
  if mode == "auto":
    mode = default_mode()

  def member(state, x, w, sigma):
    return step_lib.train_step(state, x, cfg, tx, w, sigma, dtype)

  if mode == "vmap":
    return jax.vmap(member, in_axes=(0, None, 0, 0))
  if mode != "loop":
    raise ValueError(f"unknown sweep mode {mode!r} (auto, vmap or loop)")

  def looped(states, x, ws, sigmas):
    outs = [member(unstack(states, i), x, ws[i], sigmas[i]) for i in range(num_members)]
    return stack([o[0] for o in outs]), stack([o[1] for o in outs])

  return looped
