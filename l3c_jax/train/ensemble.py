"""Sweeps: N members with stacked parameters trained by one jitted step.

Members may differ only in shape-preserving settings: seed (initialization), learning-rate
scale, per-scale loss weights and quantizer sigma. States are stacked on a leading member axis.
Two execution modes give the same numbers:
  * 'vmap': `jax.vmap` over members (batched convolutions; the right choice on GPU/TPU).
  * 'loop': a Python-unrolled loop over members inside one `jit`. XLA:CPU turns batched weights
    into grouped convolutions that run 2-3x slower than separate ones (measured,
    docs/measurements.md#training-step), so this is the CPU default.

Per member, the step keeps `train_step`'s non-finite guard (a member whose loss or gradient is
not finite keeps its previous state for that step) and takes an `active` mask: a frozen member
(diverged, or padding) keeps its state whatever the step computes.

Over several devices the member axis is split over a 1-D mesh axis 'members'
(`member_mesh_plan`, `make_sharded_sweep_step`): each device runs the step above on its own
members, with the batch replicated; members never communicate, so the result is the 1-device
sweep's.
"""

from typing import Callable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

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
                  lr_scales: Sequence[float], pixel_head_init: bool = False):
  """Stacked TrainStates, member i initialized from seed i with learning-rate scale i.

  One jitted initialization (compiled once, run per member; eager initialization runs op by
  op, and a jitted loop over members compiles N copies).
  """
  init = jax.jit(lambda key, lr: step_lib.create_train_state(cfg, tx, key, lr,
                                                             pixel_head_init=pixel_head_init))
  return stack([init(jax.random.key(s), jnp.float32(lr)) for s, lr in zip(seeds, lr_scales)])


def make_sweep_step(cfg, tx: optax.GradientTransformation, num_members: int,
                    mode: str = "auto", dtype: Optional[str] = None) -> Callable:
  """Returns step(states, x, scale_weights [N, S], soft_sigmas [N], active [N] bool = all)
  -> (states, metrics [N]).

  All members see the same batch x. A member with active False keeps its whole state (step
  counter included) and reports zero metrics. Not jitted; wrap it in `jax.jit`.
  dtype: the compute dtype name (`step_lib.train_step`).
  """
  if mode == "auto":
    mode = default_mode()

  def member(state, x, w, sigma, act):
    new, metrics = step_lib.train_step(state, x, cfg, tx, w, sigma, dtype)
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(act, a, b), new, state)
    return new, {k: jnp.where(act, v, 0.0) for k, v in metrics.items()}

  if mode == "vmap":
    mapped = jax.vmap(member, in_axes=(0, None, 0, 0, 0))
  elif mode == "loop":
    def mapped(states, x, ws, sigmas, active):
      outs = [member(unstack(states, i), x, ws[i], sigmas[i], active[i])
              for i in range(num_members)]
      return stack([o[0] for o in outs]), stack([o[1] for o in outs])
  else:
    raise ValueError(f"unknown sweep mode {mode!r} (auto, vmap or loop)")

  def sweep_step(states, x, ws, sigmas, active=None):
    if active is None:
      active = jnp.ones((num_members,), bool)
    return mapped(states, x, ws, sigmas, active)

  return sweep_step


def member_mesh_plan(num_members: int, num_devices: int) -> Tuple[int, int, int]:
  """How N members go onto D devices: (devices used d, members per device k, padded N).

  k = ceil(N / D) members per device, the least any split achieves, on d = ceil(N / k)
  devices; the member axis is padded to k * d with frozen copies of member 0 (fewer than k,
  computed and discarded). E.g. 4 members on 4 devices: (4, 1, 4); 3 on 4: (3, 1, 3); 5 on 4:
  (3, 2, 6), one padding member; 6 on 4: (3, 2, 6).
  """
  if num_members < 1 or num_devices < 1:
    raise ValueError(f"need members and devices, got {num_members}, {num_devices}")
  k = -(-num_members // num_devices)
  d = -(-num_members // k)
  return d, k, k * d


def member_mesh(num_devices: int, devices: Optional[Sequence] = None) -> Mesh:
  """A 1-D mesh 'members' over the first `num_devices` devices."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(list(devices)[:num_devices]), ("members",))


def pad_members(tree, padded: int):
  """A stacked pytree with its member axis padded to `padded` by copies of member 0."""
  def pad(x):
    extra = padded - x.shape[0]
    if extra <= 0:
      return x
    return jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)])
  return jax.tree_util.tree_map(pad, tree)


def make_sharded_sweep_step(cfg, tx: optax.GradientTransformation, mesh: Mesh,
                            members_per_device: int, mode: str = "auto",
                            dtype: Optional[str] = None) -> Callable:
  """`make_sweep_step` with the member axis split over `mesh`'s 'members' axis (shard_map).

  Arguments as make_sweep_step's with N = members_per_device x mesh size (active required);
  states, scale weights, sigmas and active sharded over 'members', x replicated. Each device
  runs its members' step; there is no communication. Not jitted; wrap it in `jax.jit`.
  """
  local = make_sweep_step(cfg, tx, members_per_device, mode, dtype)
  m, r = PartitionSpec("members"), PartitionSpec()
  return jax.shard_map(local, mesh=mesh, in_specs=(m, r, m, m, m), out_specs=(m, m))
