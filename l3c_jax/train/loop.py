"""`train_and_evaluate`: the one impure training orchestrator (data, devices, checkpoints, logs)."""

import functools
import json
import os
import signal
import sys
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from l3c_jax import model_io
from l3c_jax.data import pipeline
from l3c_jax.models import families
from l3c_jax.models import plan as plan_lib
from l3c_jax.models.families import count_params
from l3c_jax.train import input as input_lib
from l3c_jax.train import step as step_lib
from l3c_jax.train.checkpoint import CheckpointError, Checkpointer
from l3c_jax.train.config import ExperimentConfig


class TrainError(RuntimeError):
  """A user-facing training setup problem (one-line message)."""


def _log(msg: str) -> None:
  print(msg, flush=True)


def _warn(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


class MetricsWriter:
  """Appends one JSON object per line to WORKDIR/metrics.jsonl (or WORKDIR/`name`)."""

  def __init__(self, workdir: str, name: str = "metrics.jsonl"):
    self.path = os.path.join(workdir, name)

  def drop_after(self, step: int) -> int:
    """Removes the records of steps after `step` (a resumed run writes them again) and a line
    cut short by a kill; the file is replaced atomically. Returns how many lines were removed."""
    if not os.path.exists(self.path):
      return 0
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]

    def keep(line):
      try:
        return line.endswith("\n") and json.loads(line).get("step", 0) <= step
      except ValueError:
        return False

    kept = [line for line in lines if keep(line)]
    if len(kept) != len(lines):
      model_io.atomic_write(self.path, "".join(kept).encode())
    return len(lines) - len(kept)

  def write(self, record: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")


def make_mesh() -> Mesh:
  """A 1-D data-parallel mesh over all devices of all processes."""
  return Mesh(np.asarray(jax.devices()), ("data",))


def shard_batch(batch: np.ndarray, mesh: Mesh) -> jax.Array:
  """Process-local uint8 batch -> global array sharded over the 'data' axis."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.make_array_from_process_local_data(sharding, batch)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


# Distributions that bring an accelerator backend to jax.
_ACCELERATOR_PACKAGES = ("jax-cuda12-plugin", "jax-cuda13-plugin", "jax-rocm7-plugin", "libtpu")


def _warn_if_accelerator_unused() -> None:
  """A loud warning when an accelerator plugin is installed but JAX runs on the CPU (a CUDA /
  driver mismatch, say): a run would otherwise train for hours on the CPU, saying only
  '1 x cpu'."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  installed = []
  for name in _ACCELERATOR_PACKAGES:
    try:
      metadata.version(name)
      installed.append(name)
    except metadata.PackageNotFoundError:
      pass
  if installed and jax.default_backend() == "cpu":
    _warn(f"WARNING: {', '.join(installed)} installed but JAX runs on the CPU (no usable "
          "accelerator found: check the driver / CUDA version and `python -c 'import jax; "
          "print(jax.devices())'`); training on the CPU")


def _check_workdir_config(workdir: str, config: ExperimentConfig) -> None:
  path = os.path.join(workdir, "config.json")
  new = config.to_dict()
  if os.path.exists(path):
    with open(path) as f:
      # Normalized through the family registry: a run started before model families (pyramid
      # flags on one L3C config) resumes under the family that replaced them.
      old_model = families.config_from_dict(json.load(f).get("model", {})).to_dict()
    if old_model != new["model"]:
      diff = [k for k in sorted(set(new["model"]) | set(old_model))
              if old_model.get(k) != new["model"].get(k)]
      raise TrainError(f"{workdir} holds a run with another model config; use a new --workdir "
                       f"(differences: {', '.join(diff)})")
  with open(path, "w") as f:
    json.dump(new, f, indent=2, sort_keys=True)


def _export_model(workdir: str, config: ExperimentConfig, params, meta: dict) -> None:
  """Writes WORKDIR/model (the format `l3c_jax.load_model` and the codec read)."""
  model_io.save_model(os.path.join(workdir, "model"), config.model,
                      jax.device_get(params), metadata=meta)


def evaluate(params, cfg, val_images: np.ndarray, batch_size: int, eval_fn, mesh) -> dict:
  """bpsp per group of the coding plan over a fixed validation array [N, c, c, 3] (last
  partial batch dropped to keep one compiled shape, unless N < batch_size)."""
  n = val_images.shape[0]
  bs = min(batch_size, n)
  bs -= bs % len(mesh.devices.flat)
  totals = {}
  for i in range(0, n - bs + 1, bs):
    bits = jax.device_get(eval_fn(params, shard_batch(val_images[i:i + bs], mesh)))
    for k, v in bits.items():
      totals[k] = totals.get(k, 0.0) + float(v)
  nsub = totals.pop("num_subpixels")
  out = {f"val_bpsp_{k}": v / nsub for k, v in totals.items()}
  out["val_bpsp"] = sum(out.values())
  return out


def train_and_evaluate(config: ExperimentConfig, workdir: str, data_dir: Optional[str],
                       val_dir: Optional[str] = None,
                       should_stop: Optional[Callable[[], bool]] = None) -> dict:
  """Trains (resuming from WORKDIR if it holds checkpoints) and returns the last metrics.

  Args:
    config: model + training configuration.
    workdir: run directory: config.json, metrics.jsonl, checkpoints/, model/ (exported weights).
    data_dir: folder(s) of training images (comma-separated allowed), or an image store
      (`data/store.py`); unused when config.train.data_store is set.
    val_dir: folder(s) of validation images (center crops); None skips validation.
    should_stop: polled every step; True ends the run with a checkpoint (tests, signals).
  """
  t_start = time.time()
  cfg, tcfg = config.model, config.train
  _warn_if_accelerator_unused()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  _check_workdir_config(workdir, config)
  mesh = make_mesh()
  num_devices = len(mesh.devices.flat)
  if tcfg.batch_size % num_devices:
    raise TrainError(f"batch size {tcfg.batch_size} is not divisible by the {num_devices} devices")
  if tcfg.crop_size % cfg.padding_factor:
    raise TrainError(f"crop size {tcfg.crop_size} must be a multiple of {cfg.padding_factor}")
  nproc, pidx = jax.process_count(), jax.process_index()
  local_batch = tcfg.batch_size // nproc

  ckpt = Checkpointer(workdir, tcfg.max_checkpoints)
  start_step = ckpt.latest_step() or 0
  loader = input_lib.make_loader(tcfg, data_dir, local_batch, start_batch=start_step,
                                 process_index=pidx, process_count=nproc)
  val_images = None
  if val_dir:
    val_images = pipeline.center_crops(pipeline.list_images(val_dir), tcfg.val_crop_size,
                                       tcfg.val_max_images)
  tx = step_lib.make_optimizer(tcfg, loader.batches_per_epoch)
  schedule = step_lib.learning_rate_schedule(tcfg, loader.batches_per_epoch)
  # Jitted: eager initialization ran op by op (36-43 s for the paper config on the CPU).
  state = jax.jit(functools.partial(step_lib.create_train_state, cfg, tx,
                                    pixel_head_init=tcfg.pixel_head_init))(
                                        jax.random.key(tcfg.seed))
  if tcfg.init_from and not start_step:
    params, taken = step_lib.merge_params(state.params,
                                          model_io.load_model(tcfg.init_from).params)
    # The optimizer state stays as initialized: Adam's and RMSprop's start (zero moments) does
    # not depend on the parameter values.
    state = state.replace(params=params)
    _log(f"Initialized {taken} of {len(jax.tree_util.tree_leaves(params))} parameter arrays "
         f"from {tcfg.init_from}")
  elapsed = 0.0
  if start_step:
    try:
      state, meta, restored = ckpt.restore_newest_intact(state, warn=_warn)
    except CheckpointError as e:
      raise TrainError(str(e)) from None
    if restored != start_step:  # fell back past broken checkpoints: data from there, too
      loader.seek(restored)
    elapsed = float(meta.get("train_seconds", 0.0))
    _log(f"Resuming from step {int(state.step)} in {ckpt.directory} "
         f"(data position {meta.get('data_position')}, {elapsed / 3600:.2f} h trained)")
  else:
    _log(f"Starting a new run in {workdir}")
  _log(f"devices: {num_devices} x {jax.devices()[0].platform} ({nproc} process(es)); "
       f"params: {count_params(state.params):,}; images: {loader.num_usable} usable, "
       f"skipped {loader.num_skipped}; batches/epoch: {loader.batches_per_epoch}")
  state = replicate(state, mesh)
  weights = jnp.asarray(tcfg.scale_weights, jnp.float32) if tcfg.scale_weights else None
  p_train = jax.jit(lambda s, x: step_lib.train_step(s, x, cfg, tx, weights,
                                                     dtype=tcfg.compute_dtype),
                    donate_argnums=(0,))
  p_eval = jax.jit(lambda p, x: step_lib.eval_step(p, x, cfg))
  writer = MetricsWriter(workdir)

  stop = {"flag": False}

  def _on_signal(signum, frame):
    del frame
    _log(f"signal {signum}: checkpointing and stopping")
    stop["flag"] = True

  old_handlers = {}
  if jax.process_index() == 0 and sys.platform != "win32":
    try:
      for sig in (signal.SIGTERM, signal.SIGINT):
        old_handlers[sig] = signal.signal(sig, _on_signal)
    except ValueError:  # not the main thread (e.g. tests)
      old_handlers = {}

  def save(step):
    meta = {"step": step, "data_position": batches.position, "train_seconds": elapsed,
            "config": config.to_dict()}
    ckpt.save(step, state, meta)
    _export_model(workdir, config, state.params, {"step": step, "train_hours": elapsed / 3600})

  last = {}
  step = int(state.step)
  first_step = step
  acc, acc_n = None, 0  # metric sums, kept on the device until logged
  t_log = time.time()
  t_ckpt = time.time()
  last_saved = step
  # Batches go onto the devices tcfg.device_prefetch steps ahead; `batches.position` (what the
  # checkpoint stores) counts the batches the steps took, not those in flight.
  batches = input_lib.DevicePrefetcher(loader, lambda b: shard_batch(b, mesh),
                                       tcfg.device_prefetch)
  # Training time: wall time of the loop without validation and checkpointing. Steps run
  # asynchronously, so it is taken where the loop waits anyway (logging, validation, saving).
  t_mark = time.time()

  def tick():
    nonlocal elapsed, t_mark
    now = time.time()
    elapsed += now - t_mark
    t_mark = now

  try:
    while step < tcfg.num_steps and not stop["flag"] and not (should_stop and should_stop()):
      batch = next(batches)
      state, metrics = p_train(state, batch)
      acc = metrics if acc is None else jax.tree_util.tree_map(jnp.add, acc, metrics)
      acc_n += 1
      step += 1
      if step == first_step + 1:  # once: what a user waits for before training starts
        jax.block_until_ready(metrics)
        _log(f"time to first step: {time.time() - t_start:.1f} s (initialization, "
             f"compilation, first batch)")
      if step % tcfg.log_every == 0 or step == tcfg.num_steps:
        sums = jax.device_get(acc)  # the only host <-> device wait of a logging window
        tick()
        dt = time.time() - t_log
        skipped = int(round(float(sums["nonfinite"])))
        if skipped == acc_n:
          raise TrainError(f"training diverged: every step from {step - acc_n + 1} to {step} "
                           "had a non-finite loss or gradient (none was applied; the "
                           "checkpoints hold only finite states); lower the learning rate")
        if skipped:
          _warn(f"warning: {skipped} of {acc_n} steps up to step {step} had a non-finite loss "
                "or gradient and were skipped")
        rec = {k: float(sums[k]) / (acc_n - skipped) for k in sums if k != "nonfinite"}
        rec.update(step=step, steps_per_sec=acc_n / dt, nonfinite_steps=skipped,
                   images_per_sec=acc_n * tcfg.batch_size / dt,
                   learning_rate=float(schedule(step - 1)), train_hours=elapsed / 3600,
                   epoch=step / loader.batches_per_epoch, devices=num_devices)
        writer.write(rec)
        groups = reversed(plan_lib.group_names(families.plan(cfg)))  # finest first
        _log(f"step {step:>7d} | bpsp {rec['bpsp']:.4f} (" +
             ", ".join(f"{g} {rec[f'bpsp_{g}']:.3f}" for g in groups) +
             f") | {rec['steps_per_sec']:.2f} steps/s, {rec['images_per_sec']:.1f} img/s"
             f" | lr {rec['learning_rate']:.2e} | {elapsed / 3600:.2f} h")
        last.update(rec)
        acc, acc_n, t_log = None, 0, time.time()
      if val_images is not None and (step % tcfg.eval_every == 0 or step == tcfg.num_steps):
        jax.block_until_ready(state)
        tick()
        v = evaluate(state.params, cfg, val_images, tcfg.val_batch_size, p_eval, mesh)
        v.update(step=step, train_hours=elapsed / 3600)
        writer.write(v)
        _log(f"step {step:>7d} | validation bpsp {v['val_bpsp']:.4f} on {len(val_images)} crops")
        last.update(v)
        t_mark = time.time()
      due = step - last_saved >= tcfg.checkpoint_every or (
          tcfg.checkpoint_every_minutes > 0 and
          time.time() - t_ckpt >= 60 * tcfg.checkpoint_every_minutes)
      if due:
        jax.block_until_ready(state)
        tick()
        save(step)
        last_saved, t_ckpt = step, time.time()
        t_mark = t_ckpt
  finally:
    if step != last_saved:
      tick()
      save(step)
      _log(f"checkpoint at step {step} written to {ckpt.directory}")
    loader.close()
    ckpt.close()
    for sig, h in old_handlers.items():
      signal.signal(sig, h)
  last["step"] = step
  return last
