"""Pure training / evaluation steps (no I/O, no Python side effects; jit- and vmap-able)."""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import optax

from l3c_jax import losses
from l3c_jax.models import families
from l3c_jax.train.config import TrainConfig


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (a pytree)."""
  step: jax.Array
  params: Any
  opt_state: Any


def learning_rate_schedule(tcfg: TrainConfig, batches_per_epoch: int) -> optax.Schedule:
  """Staircase exponential decay: lr * factor^floor(step / decay_steps) (L3C `exp_0.75_e5`)."""
  if tcfg.lr_decay_steps > 0:
    decay_steps = tcfg.lr_decay_steps
  else:
    decay_steps = max(1, int(tcfg.lr_decay_epochs * batches_per_epoch))
  return optax.exponential_decay(tcfg.learning_rate, decay_steps, tcfg.lr_decay_factor,
                                 staircase=True)


def make_optimizer(tcfg: TrainConfig, batches_per_epoch: int) -> optax.GradientTransformation:
  """RMSprop with PyTorch semantics (alpha 0.99, eps after the sqrt) or Adam; L3C's schedule.

  The learning rate is an injected hyper-parameter scaled by `lr_scale` in `opt_state`, so a
  sweep can vmap over it (members differ only in that number).
  """
  schedule = learning_rate_schedule(tcfg, batches_per_epoch)

  if tcfg.optimizer not in ("rmsprop", "adam"):
    raise ValueError(f"unknown optimizer {tcfg.optimizer!r} (rmsprop or adam)")

  def make(lr_scale):
    lr = lambda count: schedule(count) * lr_scale
    if tcfg.optimizer == "adam":
      tx = optax.adam(lr)
    else:
      # NOTE(l3c-pytorch): optax's default eps_in_sqrt=True differs from torch.optim.RMSprop.
      tx = optax.rmsprop(lr, decay=tcfg.rmsprop_decay, eps=tcfg.rmsprop_eps, eps_in_sqrt=False)
    if tcfg.grad_clip_norm > 0:
      tx = optax.chain(optax.clip_by_global_norm(tcfg.grad_clip_norm), tx)
    return tx

  return optax.inject_hyperparams(make)(lr_scale=1.0)


def init_pixel_head(params, cfg, mean: float = 127.5, log_scale: float = math.log(16.0)):
  """Sets the biases of the pixel heads' mean / log-scale channels (TrainConfig.pixel_head_init).

  NOTE(l3c-pytorch): an intentional deviation from the official default init, only where a
  config asks for it. Channel layout of the head: p * C * K + c * K + k (p 1 = means, 2 = scales).
  """
  family = families.get(cfg)
  ck = 3 * cfg.num_mixtures
  if family.residual_means(cfg):
    mean = 0.0  # the head predicts offsets from the upsampled coarser image
  out = jax.tree_util.tree_map(lambda x: x, params)  # shallow structural copy
  # Every head of the RGB pyramids predicts pixels; in L3C only head 1 does.
  for name, is_rgb in family.head_names(cfg):
    if not is_rgb:
      continue
    bias = params[name]["out"]["conv"]["bias"]
    bias = bias.at[ck:2 * ck].set(mean / cfg.pixel_mean_scale).at[2 * ck:3 * ck].set(log_scale)
    out[name]["out"]["conv"]["bias"] = bias
  return out


def merge_params(params, source) -> Tuple[Any, int]:
  """params with every leaf that `source` has at the same path and shape taken from source.

  Returns:
    (merged params, number of leaves taken).
  """
  flat_src = {path: leaf for path, leaf in jax.tree_util.tree_flatten_with_path(source)[0]}
  taken = 0

  def pick(path, leaf):
    nonlocal taken
    other = flat_src.get(path)
    if other is not None and tuple(other.shape) == tuple(leaf.shape):
      taken += 1
      return jnp.asarray(other, leaf.dtype)
    return leaf

  merged = jax.tree_util.tree_map_with_path(pick, params)
  return merged, taken


def create_train_state(cfg, tx: optax.GradientTransformation, rng: jax.Array,
                       lr_scale: Optional[jax.Array] = None,
                       pixel_head_init: bool = False) -> TrainState:
  """Initializes params (PyTorch default init) and optimizer state; vmappable over rng."""
  params = families.init_params(cfg, rng)
  if pixel_head_init:
    params = init_pixel_head(params, cfg)
  opt_state = tx.init(params)
  if lr_scale is not None:
    opt_state.hyperparams["lr_scale"] = jnp.asarray(lr_scale, jnp.float32)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)


# TrainConfig.compute_dtype -> the network's compute dtype (`families.module`); float32 is
# None, the model's own float32 path, so that results without the option are unchanged.
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def compute_dtype(name: Optional[str]):
  """A `TrainConfig.compute_dtype` name (or None: float32) -> the network's dtype argument."""
  if name is None:
    return None
  try:
    return COMPUTE_DTYPES[name]
  except KeyError:
    raise ValueError(f"unknown compute dtype {name!r} ({', '.join(COMPUTE_DTYPES)})") from None


def loss_fn(params, x: jax.Array, cfg,
            scale_weights: Optional[Sequence[float]] = None, soft_sigma=None,
            dtype: Optional[str] = None,
            example_weights: Optional[jax.Array] = None):
  """Training loss (the bpsp of every step of the coding plan with a head) and metrics.

  Args:
    params: model parameters.
    x: [B, H, W, 3] pixels 0..255 (uint8 or float32), H, W multiples of 2^S.
    scale_weights: optional [S] per-group loss weights, finest first (ablations); may be traced.
    soft_sigma: optional quantizer sigma overriding cfg.soft_sigma; may be traced.
    dtype: compute dtype name of the network's convs (`TrainConfig.compute_dtype`; None:
      float32). Parameters, head outputs, the likelihood and the loss are float32 regardless.
    example_weights: optional [B] image weights: 0 leaves a row out (the padding of a batch
      padded to a multiple of the device count, train/distributed.py); None: every row counts.
  """
  x = x.astype(jnp.float32)
  return losses.bpsp_metrics(cfg, params, x, scale_weights=scale_weights, train=True,
                             soft_sigma=soft_sigma, dtype=compute_dtype(dtype),
                             example_weights=example_weights)


def train_step(state: TrainState, x: jax.Array, cfg,
               tx: optax.GradientTransformation,
               scale_weights: Optional[jax.Array] = None, soft_sigma=None,
               dtype: Optional[str] = None,
               example_weights: Optional[jax.Array] = None):
  """One RMSprop step on batch x -> (new state, metrics). Pure.

  scale_weights ([S]) and soft_sigma (scalar) are optional array hyper-parameters, so sweeps can
  give every member its own (see train/ensemble.py); the learning-rate scale lives in opt_state.
  dtype: the network's compute dtype name (`TrainConfig.compute_dtype`, static; None: float32);
  gradients, parameters and optimizer state are float32 whatever it is.
  example_weights ([B], see loss_fn) leaves padding rows out of loss, gradient and metrics.
  """
  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, x, cfg, scale_weights, soft_sigma, dtype, example_weights)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics)
  grad_norm = optax.tree.norm(grads)
  metrics["grad_norm"] = grad_norm
  # A non-finite loss or gradient leaves parameters and optimizer state as they were (checked
  # here, on the device, so the loop never waits for the host and never holds, let alone
  # checkpoints, a non-finite state); `nonfinite` counts such steps for the loop to report.
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(optax.tree.norm(updates))
  keep = lambda new, old: jnp.where(finite, new, old)
  params = jax.tree_util.tree_map(keep, params, state.params)
  opt_state = jax.tree_util.tree_map(keep, opt_state, state.opt_state)
  # A skipped step's metrics are zeroed, so that the loop's sums average the applied steps.
  metrics = {k: jnp.where(finite, v, 0.0) for k, v in metrics.items()}
  metrics["nonfinite"] = 1.0 - finite.astype(jnp.float32)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params, x: jax.Array, cfg,
              example_weights: Optional[jax.Array] = None) -> Dict[str, jax.Array]:
  """Hard-quantized (eval mode) bits per group for a batch; sums, so batches can be pooled.

  example_weights: optional [B] image weights (0: a padding row, counted nowhere).
  """
  x = x.astype(jnp.float32)
  bits = losses.bits_per_group(cfg, params, x, example_weights=example_weights)
  images = x.shape[0] if example_weights is None else jnp.sum(example_weights)
  bits["num_subpixels"] = jnp.asarray(images * (x.shape[1] * x.shape[2] * 3), jnp.float32)
  return bits
