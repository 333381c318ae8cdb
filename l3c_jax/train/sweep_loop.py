"""`train_sweep`: the impure driver of a sweep (`experiments/sweep.py`), beside `loop.py`.

N members with stacked parameters train on the same batches (`ensemble.py`). What makes a sweep
survive, with the main loop's pieces (`loop.MetricsWriter`, `loop.evaluate`,
`checkpoint.Checkpointer`, `step.train_step`'s non-finite guard):
  * checkpoints of the stacked state every `checkpoint_every` steps (and on SIGTERM/SIGINT or
    `should_stop`), with the data position and each member's status in the checkpoint's JSON;
    rerunning the same command resumes from the newest one, and records of the metrics log past
    the restored step are dropped, so none is written twice. WORKDIR/sweep.json holds the
    members and the config: a rerun whose --sweep_* lists or model differ is refused (one line);
    --train.* may change (e.g. more steps).
  * a NaN guard per member: a non-finite step of a member leaves that member's state as it was
    (`train_step`); a member whose every step of a logging window was non-finite is marked
    diverged, frozen (its updates masked off in the step), reported in one line and no longer
    logged, validated or counted; the others go on. The sweep stops when none is left.
  * validation per member every `eval_every` steps on the validation crops: `loop.evaluate`,
    the main loop's path, once per live member (data-parallel over all devices).
  * members spread over the devices: `ensemble.member_mesh_plan` (printed at start); checkpoints
    hold the N real members only, so a sweep resumes on another device count.
"""

import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from l3c_jax import model_io
from l3c_jax.data import pipeline
from l3c_jax.models import families
from l3c_jax.train import ensemble
from l3c_jax.train import input as input_lib
from l3c_jax.train import loop
from l3c_jax.train import step as step_lib
from l3c_jax.train.checkpoint import CheckpointError, Checkpointer
from l3c_jax.train.config import ExperimentConfig

# The per-member settings, in the order of the --sweep_* flags.
MEMBER_KEYS = ("seeds", "lr_scales", "soft_sigmas", "scale_weights")
LOG_NAME = "sweep_metrics.jsonl"


class SweepError(RuntimeError):
  """A user-facing sweep setup problem (one-line message)."""


def _log(msg: str) -> None:
  print(msg, flush=True)


def _warn(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def _check_workdir(workdir: str, config: ExperimentConfig, members: dict) -> None:
  """Refuses a WORKDIR whose sweep.json has other members or another model; writes it."""
  path = os.path.join(workdir, "sweep.json")
  new = {"members": members, "config": config.to_dict()}
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diff = [f"--sweep_{k}" for k in MEMBER_KEYS
            if old.get("members", {}).get(k) != members.get(k)]
    old_model = families.config_from_dict(old.get("config", {}).get("model", {})).to_dict()
    diff += [f"--model.{k}" for k in sorted(set(old_model) | set(new["config"]["model"]))
             if old_model.get(k) != new["config"]["model"].get(k)]
    if diff:
      raise SweepError(f"{workdir} holds a sweep with other flags ({', '.join(diff)}); rerun "
                       "with the same --sweep_* and --model.* flags to resume, or use a new "
                       "--workdir")
  model_io.atomic_write(path, json.dumps(new, indent=2, sort_keys=True).encode())


def _normalize(members: Dict[str, Sequence]) -> dict:
  """Plain JSON types (what sweep.json and the checkpoint hold), so lists compare equal."""
  return json.loads(json.dumps({k: list(members[k]) for k in MEMBER_KEYS}))


def train_sweep(config: ExperimentConfig, members: Dict[str, Sequence], workdir: str,
                data_dir: Optional[str], val_dir: Optional[str] = None, mode: str = "auto",
                num_devices: int = 0,
                should_stop: Optional[Callable[[], bool]] = None) -> dict:
  """Trains (resuming from WORKDIR if it holds checkpoints) all members of a sweep.

  Args:
    config: model + training configuration shared by the members.
    members: per-member lists of equal length N: 'seeds' (int), 'lr_scales' (float),
      'soft_sigmas' (float), 'scale_weights' (one list of S floats per member).
    workdir: sweep.json, sweep_metrics.jsonl, checkpoints/, member_<i>/model (at the end).
    data_dir: training images (folders or an image store, as in train.py).
    val_dir: validation images (center crops); None skips validation.
    mode: 'vmap', 'loop' or 'auto' (ensemble.default_mode()).
    num_devices: devices to spread the members over (0: all).
    should_stop: polled every step; True ends the sweep with a checkpoint (tests).

  Returns:
    {'step': last step, 'members': [{'status', 'diverged_at', last train and validation
    metrics} per member]}.

  Raises:
    SweepError: a WORKDIR of another sweep, no data, or a checkpoint that does not restore.
  """
  t_start = time.time()
  cfg, tcfg = config.model, config.train
  members = _normalize(members)
  n = len(members["seeds"])
  if not n or any(len(members[key]) != n for key in MEMBER_KEYS):
    raise SweepError(f"member lists of unequal length: "
                     f"{ {key: len(members[key]) for key in MEMBER_KEYS} }")
  if tcfg.crop_size % cfg.padding_factor:
    raise SweepError(f"crop size {tcfg.crop_size} must be a multiple of {cfg.padding_factor}")
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  _check_workdir(workdir, config, members)

  ckpt = Checkpointer(workdir, tcfg.max_checkpoints)
  start_step = ckpt.latest_step() or 0
  try:
    loader = input_lib.make_loader(tcfg, data_dir, tcfg.batch_size, start_batch=start_step)
    val_images = None
    if val_dir:
      val_images = pipeline.center_crops(pipeline.list_images(val_dir), tcfg.val_crop_size,
                                         tcfg.val_max_images)
  except pipeline.DataError as e:
    ckpt.close()
    raise SweepError(str(e)) from None
  tx = step_lib.make_optimizer(tcfg, loader.batches_per_epoch)
  states = ensemble.create_states(cfg, tx, members["seeds"], members["lr_scales"],
                                  pixel_head_init=tcfg.pixel_head_init)
  diverged: List[Optional[int]] = [None] * n  # the step at which member j was frozen
  elapsed = 0.0
  if start_step:
    try:
      states, meta, restored = ckpt.restore_newest_intact(states, warn=_warn)
    except CheckpointError as e:
      loader.close()
      ckpt.close()
      raise SweepError(str(e)) from None
    if restored != start_step:  # fell back past broken checkpoints: data from there, too
      loader.seek(restored)
    start_step = restored
    diverged = list(meta.get("diverged", diverged))
    elapsed = float(meta.get("train_seconds", 0.0))
    _log(f"Resuming the sweep from step {restored} in {ckpt.directory} (data position "
         f"{meta.get('data_position')}, diverged members: "
         f"{[j for j in range(n) if diverged[j] is not None] or 'none'})")
  else:
    _log(f"Starting a new sweep in {workdir}")
  writer = loop.MetricsWriter(workdir, LOG_NAME)
  dropped = writer.drop_after(start_step)
  if dropped:
    _log(f"dropped {dropped} record(s) past step {start_step} from {writer.path}")

  # Members over devices (ensemble.member_mesh_plan): k per device on d devices, padded.
  total = jax.device_count()
  d, k, padded = ensemble.member_mesh_plan(n, min(num_devices or total, total))
  mesh = ensemble.member_mesh(d)
  mode = ensemble.default_mode() if mode == "auto" else mode
  _log(f"sweep: {n} members, mode {mode}; {d} of {total} x {jax.devices()[0].platform} "
       f"device(s), {k} member(s) each" +
       (f", {padded - n} frozen padding member(s)" if padded > n else ""))
  by_member = NamedSharding(mesh, PartitionSpec("members"))
  replicated = NamedSharding(mesh, PartitionSpec())

  def put_members(tree):
    return jax.device_put(ensemble.pad_members(tree, padded), by_member)

  def put_active():
    return jax.device_put(np.asarray([j < n and diverged[j] is None for j in range(padded)]),
                          by_member)

  states = put_members(states)
  ws = put_members(jnp.asarray(members["scale_weights"], jnp.float32))
  sigmas = put_members(jnp.asarray(members["soft_sigmas"], jnp.float32))
  active = put_active()
  p_train = jax.jit(ensemble.make_sharded_sweep_step(cfg, tx, mesh, k, mode,
                                                    tcfg.compute_dtype),
                    donate_argnums=(0,))
  data_mesh = loop.make_mesh()  # validation: one member at a time, batch over all devices
  p_eval = jax.jit(lambda p, x, w: step_lib.eval_step(p, x, cfg, w))

  stop = {"flag": False}

  def _on_signal(signum, frame):
    del frame
    _log(f"signal {signum}: checkpointing and stopping")
    stop["flag"] = True

  old_handlers = loop.catch_stop_signals(_on_signal)

  batches = input_lib.DevicePrefetcher(loader, lambda b: jax.device_put(b, replicated),
                                       tcfg.device_prefetch)

  def save(step):
    meta = {"step": step, "data_position": batches.position, "train_seconds": clock.seconds,
            "diverged": diverged, "members": members, "config": config.to_dict()}
    real = states if padded == n else jax.tree_util.tree_map(lambda x: x[:n], states)
    ckpt.save(step, real, meta)

  last: List[dict] = [{} for _ in range(n)]
  step = start_step
  first_step = step
  acc, acc_n = None, 0
  t_log = time.time()
  last_saved = step
  clock = loop.TrainClock(elapsed, tcfg.checkpoint_every_minutes)

  def live():
    return [j for j in range(n) if diverged[j] is None]

  try:
    while (step < tcfg.num_steps and live() and not stop["flag"]
           and not (should_stop and should_stop())):
      states, metrics = p_train(states, next(batches), ws, sigmas, active)
      acc = metrics if acc is None else jax.tree_util.tree_map(jnp.add, acc, metrics)
      acc_n += 1
      step += 1
      if step == first_step + 1:
        jax.block_until_ready(metrics)
        _log(f"time to first step: {time.time() - t_start:.1f} s (initialization, "
             "compilation, first batch)")
      if step % tcfg.log_every == 0 or step == tcfg.num_steps:
        sums = jax.device_get(acc)
        clock.tick()
        dt = time.time() - t_log
        newly = []
        for j in live():
          skipped = int(round(float(sums["nonfinite"][j])))
          if skipped == acc_n:
            diverged[j] = step
            newly.append(j)
            _warn(f"member {j} diverged: every step from {step - acc_n + 1} to {step} had a "
                  "non-finite loss or gradient; frozen at its last finite state, the others "
                  "go on")
            continue
          if skipped:
            _warn(f"warning: member {j}: {skipped} of {acc_n} steps up to step {step} had a "
                  "non-finite loss or gradient and were skipped")
          rec = {key: float(v[j]) / (acc_n - skipped) for key, v in sums.items()
                 if key != "nonfinite"}
          rec.update(step=step, member=j, nonfinite_steps=skipped, steps_per_sec=acc_n / dt,
                     seconds=clock.seconds, **{key: members[key][j] for key in MEMBER_KEYS})
          writer.write(rec)
          last[j].update(rec)
        if newly:
          active = put_active()
        _log(f"step {step}: " + " | ".join(
            f"m{j} {last[j]['bpsp']:.3f}" if diverged[j] is None else f"m{j} diverged"
            for j in range(n)))
        acc, acc_n, t_log = None, 0, time.time()
      if val_images is not None and (step % tcfg.eval_every == 0 or step == tcfg.num_steps):
        jax.block_until_ready(states)
        clock.tick()
        for j in live():
          params = loop.replicate(ensemble.unstack(states.params, j), data_mesh)
          v = loop.evaluate(params, cfg, val_images, tcfg.val_batch_size, p_eval, data_mesh)
          v.update(step=step, member=j)
          writer.write(v)
          last[j].update(v)
        _log(f"step {step}: validation bpsp " + " | ".join(
            f"m{j} {last[j]['val_bpsp']:.4f}" for j in live()) + f" on {len(val_images)} crops")
        clock.skip()
      if step - last_saved >= tcfg.checkpoint_every or clock.checkpoint_due():
        jax.block_until_ready(states)
        clock.tick()
        save(step)
        last_saved = step
        clock.saved()
  finally:
    if step != last_saved:
      clock.tick()
      save(step)
      _log(f"checkpoint at step {step} written to {ckpt.directory}")
    loader.close()
    ckpt.close()
    loop.restore_signals(old_handlers)

  summary = []
  for j in range(n):
    settings = ", ".join(f"{key}={members[key][j]}" for key in MEMBER_KEYS)
    params = jax.device_get(ensemble.unstack(states.params, j))
    status = "trained" if diverged[j] is None else "diverged"
    model_io.save_model(os.path.join(workdir, f"member_{j}", "model"), cfg, params,
                        metadata={"step": step, "status": status, "diverged_at": diverged[j],
                                  **{key: members[key][j] for key in MEMBER_KEYS}})
    line = f"member {j} ({settings}): "
    if diverged[j] is None:
      line += f"trained to step {step}"
    else:
      line += (f"DIVERGED at step {diverged[j]} (all steps of its logging window non-finite; "
               "frozen there)")
    if "bpsp" in last[j]:
      line += f", train bpsp {last[j]['bpsp']:.4f} (step {last[j]['step']})"
    if "val_bpsp" in last[j]:
      line += f", validation bpsp {last[j]['val_bpsp']:.4f}"
    _log(line)
    summary.append({"status": status, "diverged_at": diverged[j], **last[j]})
  return {"step": step, "members": summary}
