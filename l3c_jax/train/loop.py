"""`train_and_evaluate`: the one impure training orchestrator (data, devices, checkpoints, logs)."""

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
from l3c_jax.train import distributed
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


make_mesh = distributed.make_mesh
replicate = distributed.replicate


def shard_batch(batch: np.ndarray, mesh: Mesh) -> jax.Array:
  """Process-local batch (a multiple of the local devices) -> global array sharded over
  'data'. The loop itself lays batches out with `distributed.shard` (any batch size)."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.make_array_from_process_local_data(sharding, batch)


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


def catch_stop_signals(handler) -> dict:
  """Installs `handler` for SIGTERM and SIGINT -> the previous handlers, for
  `restore_signals`; none where signals cannot be caught (Windows, a thread other than the
  main one, e.g. in tests)."""
  old = {}
  if sys.platform != "win32":
    try:
      for sig in (signal.SIGTERM, signal.SIGINT):
        old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
      for sig, h in old.items():
        signal.signal(sig, h)
      old = {}
  return old


def restore_signals(old: dict) -> None:
  for sig, h in old.items():
    signal.signal(sig, h)


class TrainClock:
  """The clocks of a training loop (the single-model loop and `sweep_loop`).

  `seconds`: training time, the wall time of the loop without validation and checkpointing.
  Steps run asynchronously, so the loop calls `tick` where it waits anyway (logging, before
  validation, before saving); `skip` after validation drops the time since the last tick, and
  `saved` after a checkpoint does too and restarts the timed-checkpoint clock.
  """

  def __init__(self, seconds: float, checkpoint_every_minutes: float):
    self.seconds = seconds
    self._every_s = 60 * checkpoint_every_minutes
    self._mark = self._saved_at = time.time()

  def tick(self) -> None:
    now = time.time()
    self.seconds += now - self._mark
    self._mark = now

  def skip(self) -> None:
    self._mark = time.time()

  def saved(self) -> None:
    self._saved_at = self._mark = time.time()

  def checkpoint_due(self) -> bool:
    """A timed checkpoint is due (checkpoint_every_minutes > 0 and that long since the last)."""
    return self._every_s > 0 and time.time() - self._saved_at >= self._every_s


def evaluate(params, cfg, val_images: np.ndarray, batch_size: int, eval_fn, mesh) -> dict:
  """bpsp per group of the coding plan over a fixed validation array [N, c, c, 3]: every image,
  in batches of min(batch_size, N) laid out like training batches (`distributed.BatchLayout`:
  padded to a multiple of the devices; the padding and the last batch's missing rows weigh 0,
  so one compiled shape serves all batches).

  Args:
    eval_fn: (params, x [padded rows, c, c, 3], weights [padded rows]) -> bit sums per group
      and 'num_subpixels'.
  """
  del cfg
  n = val_images.shape[0]
  layout = distributed.batch_layout(mesh, min(batch_size, n))
  bs = layout.batch_size
  rows = np.asarray(layout.plan_rows)
  totals = {}
  for i in range(0, n, bs):
    real = min(bs, n - i)
    idx = np.where(rows < real, i + rows, i)  # missing rows: copies of the batch's first image
    x = distributed.shard(val_images[idx], layout, mesh)
    w = distributed.shard(layout.weights(real), layout, mesh)
    bits = jax.device_get(eval_fn(params, x, w))
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

  Multi-process runs (after `jax.distributed.initialize()`) call this on every process with the
  same arguments and a WORKDIR on a file system they share: every process reads its own rows
  of each global batch, all stop and checkpoint at the same step, process 0 alone writes
  config.json, metrics.jsonl and model/ (and prints the progress lines).

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
  nproc, pidx = jax.process_count(), jax.process_index()
  primary = pidx == 0
  log = _log if primary else (lambda msg: None)
  if primary:
    _warn_if_accelerator_unused()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  if primary:
    _check_workdir_config(workdir, config)
  if tcfg.crop_size % cfg.padding_factor:
    raise TrainError(f"crop size {tcfg.crop_size} must be a multiple of {cfg.padding_factor}")
  if tcfg.batch_size < 1:
    raise TrainError(f"batch size {tcfg.batch_size} must be positive")
  mesh = make_mesh()
  num_devices = len(mesh.devices.flat)
  layout = distributed.batch_layout(mesh, tcfg.batch_size)

  ckpt = Checkpointer(workdir, tcfg.max_checkpoints)
  start_step = ckpt.latest_step() or 0
  # Global batches: the epoch (and so the learning-rate schedule) counts batches of
  # tcfg.batch_size crops whatever the process count; this process makes its rows of each.
  loader = input_lib.make_loader(tcfg, data_dir, tcfg.batch_size, start_batch=start_step,
                                 rows=layout.plan_rows)
  val_images = None
  if val_dir:
    val_images = pipeline.center_crops(pipeline.list_images(val_dir), tcfg.val_crop_size,
                                       tcfg.val_max_images)
  tx = step_lib.make_optimizer(tcfg, loader.batches_per_epoch)
  schedule = step_lib.learning_rate_schedule(tcfg, loader.batches_per_epoch)
  replicated = NamedSharding(mesh, PartitionSpec())
  # Jitted: eager initialization ran op by op (36-43 s for the paper config on the CPU). Every
  # process computes the same state straight into the replicated layout.
  state = jax.jit(lambda: step_lib.create_train_state(
      cfg, tx, jax.random.key(tcfg.seed), pixel_head_init=tcfg.pixel_head_init),
                  out_shardings=replicated)()
  if tcfg.init_from and not start_step:
    params, taken = step_lib.merge_params(jax.device_get(state.params),
                                          model_io.load_model(tcfg.init_from).params)
    # The optimizer state stays as initialized: Adam's and RMSprop's start (zero moments) does
    # not depend on the parameter values.
    state = state.replace(params=replicate(jax.device_get(params), mesh))
    log(f"Initialized {taken} of {len(jax.tree_util.tree_leaves(params))} parameter arrays "
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
    log(f"Resuming from step {int(state.step)} in {ckpt.directory} "
        f"(data position {meta.get('data_position')}, {elapsed / 3600:.2f} h trained)")
  else:
    log(f"Starting a new run in {workdir}")
  log(f"devices: {num_devices} x {jax.devices()[0].platform} ({nproc} process(es)); "
      f"params: {count_params(state.params):,}; images: {loader.num_usable} usable, "
      f"skipped {loader.num_skipped}; batches/epoch: {loader.batches_per_epoch}")
  log(layout.describe() + (f"; {len(layout.rows)} rows made by each of the {nproc} processes"
                           if nproc > 1 else ""))
  weights = jnp.asarray(tcfg.scale_weights, jnp.float32) if tcfg.scale_weights else None
  # Row j of the padded batch weighs 1 if j < batch_size: one array on the devices, laid out
  # like the batches, passed to every step; None (no padding): the unweighted sum of before.
  row_weights = (distributed.shard(layout.weights(), layout, mesh) if layout.padding
                 else None)
  # Stop and timed checkpoints: decided by all processes together (one process's signal or
  # clock must not make it save or stop alone: orbax saves collectively, and the steps are
  # collectives too); with several processes the step reduces every process's flags.
  agreement = distributed.Agreement(mesh)

  def _step(s, x, w, flags):
    s, m = step_lib.train_step(s, x, cfg, tx, weights, dtype=tcfg.compute_dtype,
                               example_weights=w)
    return s, m, agreement.reduce(flags)

  p_train = jax.jit(_step, donate_argnums=(0,))
  p_eval = jax.jit(lambda p, x, w: step_lib.eval_step(p, x, cfg, w))
  writer = MetricsWriter(workdir) if primary else None
  if writer is not None and start_step:
    # Records past the restored step (logged after the checkpoint, before a kill) are written
    # again by this run; without this they would appear twice.
    if writer.drop_after(int(state.step)):
      log(f"metrics.jsonl: records after step {int(state.step)} dropped (they are redone)")

  stop = {"flag": False}

  def _on_signal(signum, frame):
    del frame
    _log(f"signal {signum}: checkpointing and stopping"
         + (f" (process {pidx}; all processes stop at the same step)" if nproc > 1 else ""))
    stop["flag"] = True

  old_handlers = catch_stop_signals(_on_signal)

  def save(step):
    meta = {"step": step, "data_position": batches.position, "train_seconds": clock.seconds,
            "config": config.to_dict()}
    ckpt.save(step, state, meta)  # every process: orbax saves collectively
    if primary:
      _export_model(workdir, config, state.params,
                    {"step": step, "train_hours": clock.seconds / 3600})

  last = {}
  step = int(state.step)
  first_step = step
  acc, acc_n = None, 0  # metric sums, kept on the device until logged
  t_log = time.time()
  last_saved = step
  # Batches go onto the devices tcfg.device_prefetch steps ahead; `batches.position` (what the
  # checkpoint stores) counts the batches the steps took, not those in flight.
  batches = input_lib.DevicePrefetcher(loader, lambda b: distributed.shard(b, layout, mesh),
                                       tcfg.device_prefetch)
  # A clean end (steps done, agreed stop, divergence seen by all) checkpoints on the way out;
  # with several processes, an error on one of them cannot, the others are not saving with it.
  ending_together = nproc == 1
  clock = TrainClock(elapsed, tcfg.checkpoint_every_minutes)

  try:
    while step < tcfg.num_steps:
      flags = distributed.STOP if stop["flag"] or (should_stop and should_stop()) else 0
      if primary and clock.checkpoint_due():
        flags |= distributed.CHECKPOINT
      if flags & distributed.STOP and not agreement.multi:
        break
      batch = next(batches)
      state, metrics, reduced = p_train(state, batch, row_weights, agreement.offer(flags))
      agreed, offered = agreement.record(step, flags, reduced)
      acc = metrics if acc is None else jax.tree_util.tree_map(jnp.add, acc, metrics)
      acc_n += 1
      step += 1
      if step == first_step + 1:  # once: what a user waits for before training starts
        jax.block_until_ready(metrics)
        log(f"time to first step: {time.time() - t_start:.1f} s (initialization, "
            f"compilation, first batch)")
      if step % tcfg.log_every == 0 or step == tcfg.num_steps:
        sums = jax.device_get(acc)  # the only host <-> device wait of a logging window
        clock.tick()
        dt = time.time() - t_log
        skipped = int(round(float(sums["nonfinite"])))
        if skipped == acc_n:  # the metrics are global: every process raises at this step
          ending_together = True
          raise TrainError(f"training diverged: every step from {step - acc_n + 1} to {step} "
                           "had a non-finite loss or gradient (none was applied; the "
                           "checkpoints hold only finite states); lower the learning rate")
        if skipped and primary:
          _warn(f"warning: {skipped} of {acc_n} steps up to step {step} had a non-finite loss "
                "or gradient and were skipped")
        rec = {k: float(sums[k]) / (acc_n - skipped) for k in sums if k != "nonfinite"}
        rec.update(step=step, steps_per_sec=acc_n / dt, nonfinite_steps=skipped,
                   images_per_sec=acc_n * tcfg.batch_size / dt,
                   learning_rate=float(schedule(step - 1)), train_hours=clock.seconds / 3600,
                   epoch=step / loader.batches_per_epoch, devices=num_devices)
        if writer:
          writer.write(rec)
        groups = reversed(plan_lib.group_names(families.plan(cfg)))  # finest first
        log(f"step {step:>7d} | bpsp {rec['bpsp']:.4f} (" +
            ", ".join(f"{g} {rec[f'bpsp_{g}']:.3f}" for g in groups) +
            f") | {rec['steps_per_sec']:.2f} steps/s, {rec['images_per_sec']:.1f} img/s"
            f" | lr {rec['learning_rate']:.2e} | {clock.seconds / 3600:.2f} h")
        last.update(rec)
        acc, acc_n, t_log = None, 0, time.time()
      if val_images is not None and (step % tcfg.eval_every == 0 or step == tcfg.num_steps):
        jax.block_until_ready(state)
        clock.tick()
        v = evaluate(state.params, cfg, val_images, tcfg.val_batch_size, p_eval, mesh)
        v.update(step=step, train_hours=clock.seconds / 3600)
        if writer:
          writer.write(v)
        log(f"step {step:>7d} | validation bpsp {v['val_bpsp']:.4f} on {len(val_images)} crops")
        last.update(v)
        clock.skip()
      # A timed checkpoint asked for before the last one was written is already served.
      due = step - last_saved >= tcfg.checkpoint_every or (
          agreed & distributed.CHECKPOINT and offered >= last_saved)
      if due:
        jax.block_until_ready(state)
        clock.tick()
        save(step)
        last_saved = step
        clock.saved()
      if agreed & distributed.STOP:  # several processes: every one breaks after this step
        log(f"step {step}: a process asked to stop; all checkpoint and stop here")
        break
    ending_together = True
  finally:
    if step != last_saved and ending_together:
      clock.tick()
      save(step)
      log(f"checkpoint at step {step} written to {ckpt.directory}")
    loader.close()
    ckpt.close()
    restore_signals(old_handlers)
  last["step"] = step
  return last
