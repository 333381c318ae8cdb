"""Training: the step learns, checkpoints round-trip, runs resume, every flagfile builds."""

import glob
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import flags

from l3c_jax.models import L3CConfig
from l3c_jax.train import step as step_lib
from l3c_jax.train.checkpoint import CheckpointError, Checkpointer
from l3c_jax.train.config import ExperimentConfig, TrainConfig

import launchers
from conftest import write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = L3CConfig(num_channels=8, num_res_blocks=1, latent_channels=2, num_mixtures=2)
# One optimizer and one jitted float step for the tests below (each jax.jit of a new lambda
# compiled the tiny model's training step again: ~10-15 s each on the loaded 2-core machine).
# soft_sigma is an argument (TINY.soft_sigma for an ordinary step); an infinite learning rate
# is an lr_scale in the state, so that is the same compiled step as well.
TX = step_lib.make_optimizer(TrainConfig(learning_rate=1e-3), 100)
STEP = jax.jit(lambda s, x, sigma: step_lib.train_step(s, x, TINY, TX, None, sigma))
SIGMA = jnp.float32(TINY.soft_sigma)


def _batch(seed=0, b=2, size=16):
  rng = np.random.default_rng(seed)
  base = rng.integers(60, 200, (b, 1, 1, 3))
  noise = rng.integers(-8, 9, (b, size, size, 3))
  return jnp.asarray(np.clip(base + noise, 0, 255).astype(np.uint8))


# Slow: float ~25 s, exact ~37 s here.
@pytest.mark.parametrize("exact", [False, True], ids=["float", "exact"])
@pytest.mark.slow
def test_train_step_loss_drops_on_repeated_batch(exact):
  """Float training, and quantization-aware training through the exact network
  (`--model.exact=true`, straight-through rounding): both learn."""
  config = TINY.replace(exact=exact)
  tx = TX
  state = step_lib.create_train_state(config, tx, jax.random.key(0))
  if exact:
    f = jax.jit(lambda s, x: step_lib.train_step(s, x, config, tx))
  else:
    f = lambda s, x: STEP(s, x, SIGMA)
  x = _batch()
  losses = []
  for _ in range(8):
    state, m = f(state, x)
    losses.append(float(m["loss"]))
    assert np.isfinite(float(m["grad_norm"]))
  assert losses[-1] < 0.7 * losses[0], losses
  assert int(state.step) == 8


def test_a_non_finite_step_is_skipped_on_the_device():
  """A NaN loss (here: a NaN quantizer sigma) or an infinite update leaves parameters and
  optimizer state exactly as they were, and says so in `nonfinite`; finite steps apply."""
  state = step_lib.create_train_state(TINY, TX, jax.random.key(0))
  f = STEP
  x = _batch()
  sigma = SIGMA
  new, m = f(state, x, jnp.float32(jnp.nan))
  assert float(m["nonfinite"]) == 1.0 and int(new.step) == 1
  # Its metrics are zeroed (not NaN), so a logging window's averages cover the applied steps.
  assert all(float(v) == 0.0 for k, v in m.items() if k != "nonfinite")
  for a, b in zip(jax.tree_util.tree_leaves((state.params, state.opt_state)),
                  jax.tree_util.tree_leaves((new.params, new.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  new, m = f(state, x, sigma)
  assert float(m["nonfinite"]) == 0.0
  assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
      jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(new.params)))
  # An infinite learning rate: the loss is finite, the update is not; skipped as well.
  state = step_lib.create_train_state(TINY, TX, jax.random.key(0), lr_scale=float("inf"))
  new, m = f(state, x, sigma)
  assert np.isinf(float(state.opt_state.hyperparams["lr_scale"]))
  assert float(m["nonfinite"]) == 1.0
  assert all(np.all(np.isfinite(np.asarray(l))) for l in jax.tree_util.tree_leaves(new.params))


def test_learning_rate_schedule_is_l3c_staircase():
  sched = step_lib.learning_rate_schedule(TrainConfig(), batches_per_epoch=10)  # decay every 50
  np.testing.assert_allclose(float(sched(49)), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(float(sched(50)), 0.75e-4, rtol=1e-6)
  np.testing.assert_allclose(float(sched(125)), 1e-4 * 0.75**2, rtol=1e-6)


def test_rmsprop_matches_pytorch_update_rule():
  """torch.optim.RMSprop: v = a v + (1-a) g^2; p -= lr g / (sqrt(v) + eps)."""
  tcfg = TrainConfig(learning_rate=0.1, rmsprop_eps=1e-3)
  tx = step_lib.make_optimizer(tcfg, 1000)
  p = {"w": jnp.asarray([1.0, -2.0])}
  g = {"w": jnp.asarray([0.5, 0.01])}
  st = tx.init(p)
  upd, _ = tx.update(g, st, p)
  gv = np.asarray([0.5, 0.01])
  v = 0.01 * gv**2
  expected = -0.1 * gv / (np.sqrt(v) + 1e-3)
  np.testing.assert_allclose(np.asarray(upd["w"]), expected, rtol=1e-5)


def test_checkpoint_round_trip_restores_state_exactly(tmp_path):
  state = step_lib.create_train_state(TINY, TX, jax.random.key(1))
  state, _ = STEP(state, _batch(), SIGMA)
  ck = Checkpointer(str(tmp_path), max_to_keep=2)
  ck.save(1, state, {"data_position": 1})
  fresh = step_lib.create_train_state(TINY, TX, jax.random.key(2))
  restored, meta = ck.restore(fresh)
  ck.close()
  assert meta["data_position"] == 1
  for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert type(restored.opt_state) is type(state.opt_state)


@pytest.fixture
def compilation_cache(tmp_path):
  """A persistent XLA cache in a fresh directory for one test (as experiments/train.py enables
  one): a second run in the same process loads the programs the first compiled instead of
  compiling them again (the cache's executables are the compiled code itself). Restored after."""
  from jax._src import compilation_cache as cc  # pylint: disable=g-import-not-at-top
  keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
          "jax_persistent_cache_min_entry_size_bytes")
  before = {k: getattr(jax.config, k) for k in keys}
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "xla"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  cc.reset_cache()
  yield str(tmp_path / "xla")
  for k, v in before.items():
    jax.config.update(k, v)
  cc.reset_cache()


@pytest.mark.slow
def test_training_loop_checkpoints_and_resumes(tmp_path, capsys, compilation_cache):
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  data = write_images(tmp_path / "data")
  tcfg = TrainConfig(crop_size=16, batch_size=2, num_steps=3, log_every=1, eval_every=3,
                     checkpoint_every=2, val_crop_size=16, val_max_images=2, val_batch_size=2,
                     learning_rate=1e-3, num_workers=1)
  config = ExperimentConfig(model=TINY, train=tcfg)
  work = str(tmp_path / "work")
  out = loop.train_and_evaluate(config, work, data, data)
  assert out["step"] == 3 and np.isfinite(out["val_bpsp"])
  text = capsys.readouterr().out
  assert "Starting a new run" in text
  assert re.search(r"time to first step: [0-9.]+ s", text), text
  # The newest checkpoint (3) is corrupt (a bad disk): the second run, with a larger budget,
  # resumes from the one before (2), with one warning line, data position following it, and
  # continues to 5. (One run tests both resuming and the fallback: each run compiles.)
  assert sorted(os.listdir(os.path.join(work, "checkpoints")), key=int) == ["2", "3"]
  _corrupt(os.path.join(work, "checkpoints", "3"))
  config2 = ExperimentConfig(model=TINY, train=TrainConfig(**{**tcfg.to_dict(), "num_steps": 5}))
  out2 = loop.train_and_evaluate(config2, work, data, None)
  assert out2["step"] == 5
  captured = capsys.readouterr()
  text = captured.out
  assert "Resuming from step 2" in text and "data position 2" in text
  warning = [line for line in captured.err.splitlines() if "does not restore" in line]
  assert len(warning) == 1 and "checkpoint 3 " in warning[0], captured.err
  assert "Traceback" not in captured.err + captured.out
  assert os.listdir(os.path.join(work, "checkpoints_broken")) == ["3"]
  records = [json.loads(l) for l in open(os.path.join(work, "metrics.jsonl"))]
  steps = [r["step"] for r in records if "bpsp" in r]
  # The first run's step-3 records (after checkpoint 2) are dropped: step 3 is trained anew.
  assert steps == [1, 2, 3, 4, 5]
  assert "records after step 2 dropped" in text
  assert os.path.exists(os.path.join(work, "model", "config.json"))


@pytest.mark.slow  # ~25 s on the loaded 2-core machine (a compile and two worker processes)
def test_training_from_an_image_store_checkpoints_the_consumed_data_position(tmp_path, capsys):
  """--train.data_store: the store loader with grain worker processes and batches prefetched
  onto the device; the checkpoint's data position counts the batches the steps took, not
  those already in flight."""
  from l3c_jax.data import pipeline, store  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  data = write_images(tmp_path / "data")
  store_dir = str(tmp_path / "store")
  store.write_store(pipeline.list_images(data), store_dir)
  tcfg = TrainConfig(crop_size=16, batch_size=2, num_steps=3, log_every=1, checkpoint_every=2,
                     num_workers=1, data_store=store_dir, device_prefetch=2)
  work = str(tmp_path / "work")
  out = loop.train_and_evaluate(ExperimentConfig(model=TINY, train=tcfg), work, None)
  assert out["step"] == 3 and np.isfinite(out["bpsp"])
  assert "images: 6 usable" in capsys.readouterr().out
  positions = {}
  for step in (2, 3):
    with open(os.path.join(work, "checkpoints", str(step), "meta", "metadata")) as f:
      positions[step] = json.load(f)["data_position"]
  assert positions == {2: 2, 3: 3}


def _corrupt(directory):
  """Overwrites every file of a checkpoint's state with zeros (sizes kept: a bad disk)."""
  for path in glob.glob(os.path.join(directory, "state", "**", "*"), recursive=True):
    if os.path.isfile(path):
      size = os.path.getsize(path)
      with open(path, "wb") as f:
        f.write(b"\0" * size)


def test_checkpointer_restores_the_newest_intact_checkpoint(tmp_path):
  state = {"w": np.arange(4, dtype=np.float32)}
  ck = Checkpointer(str(tmp_path), max_to_keep=3)
  for step in (1, 2, 3):
    ck.save(step, {"w": state["w"] + step}, {"data_position": step})
  warnings = []
  assert ck.restore_newest_intact(state, warn=warnings.append)[2] == 3 and not warnings
  _corrupt(tmp_path / "checkpoints" / "3")
  restored, meta, step = ck.restore_newest_intact(state, warn=warnings.append)
  assert step == 2 and meta["data_position"] == 2
  np.testing.assert_array_equal(restored["w"], state["w"] + 2)
  assert len(warnings) == 1 and "checkpoint 3 " in warnings[0] and "\n" not in warnings[0]
  assert ck.latest_step() == 2 and os.listdir(tmp_path / "checkpoints_broken") == ["3"]
  ck.save(3, {"w": state["w"] + 3}, {"data_position": 3})  # the step number is free again
  for step in ("1", "2", "3"):
    _corrupt(tmp_path / "checkpoints" / step)
  with pytest.raises(CheckpointError, match="no checkpoint in .* restores"):
    ck.restore_newest_intact(state, warn=warnings.append)
  ck.close()
  # Nothing restores: nothing is moved, so a rerun does not silently start a new run.
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2", "3"]


def test_training_refuses_other_model_in_same_workdir(tmp_path):
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  work = tmp_path / "w"
  work.mkdir()
  (work / "config.json").write_text(json.dumps(ExperimentConfig(model=TINY).to_dict()))
  other = ExperimentConfig(model=TINY.replace(num_channels=4))
  with pytest.raises(loop.TrainError, match="num_channels"):
    loop.train_and_evaluate(other, str(work), str(tmp_path), None)


def test_runs_of_the_first_config_format_resume_under_their_family(tmp_path, monkeypatch):
  """A run started before model families wrote its model as one flat config with pyramid flags
  (as the default run's config.json up to step 6339); its flagfile now names the family, and the
  two must count as the same model."""
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  work = tmp_path / "w"
  work.mkdir()
  flat = {"latent_channels": 3, "levels_max": 1.0, "levels_min": -1.0, "log_scale_min": -7.0,
          "num_channels": 32, "num_levels": 256, "num_mixtures": 5, "num_res_blocks": 4,
          "num_scales": 3, "phase_context": True, "pixel_mean_residual": True,
          "pixel_mean_scale": 1.0, "rgb_bicubic_baseline": True, "soft_sigma": 2.0,
          "subsample_pyramid": True}
  (work / "config.json").write_text(json.dumps({"model": flat, "train": {}}))
  monkeypatch.chdir(ROOT)  # nested --flagfile lines are relative to the repo root
  fv = flags.FlagValues()
  config_lib.define_flags(fv)
  fv(["prog", "--flagfile=experiments/flags/default_subsample_cpu.flags"])
  new = config_lib.from_flags(fv)
  loop._check_workdir_config(str(work), new)  # pylint: disable=protected-access
  assert json.loads((work / "config.json").read_text())["model"]["family"] == "rgb_interlaced"
  with pytest.raises(loop.TrainError, match="family"):
    loop._check_workdir_config(  # pylint: disable=protected-access
        str(work), ExperimentConfig(model=TINY, train=new.train))


@pytest.mark.parametrize("flagfile", sorted(glob.glob(os.path.join(ROOT, "experiments", "flags",
                                                                   "*.flags"))),
                         ids=os.path.basename)
def test_every_flagfile_builds_with_dry_run(flagfile, capsys):
  """sweep_*.flags go through sweep.py, all others through train.py."""
  is_sweep = os.path.basename(flagfile).startswith("sweep_")
  launchers.load("train")
  launchers.load("sweep")  # defines the --sweep_* flags in the same process
  assert launchers.run_main("sweep" if is_sweep else "train", f"--flagfile={flagfile}",
                            "--dry_run") == 0
  out = capsys.readouterr().out
  if is_sweep:
    assert "member 1:" in out
    return
  n = int(out.strip().splitlines()[-1].split(":")[1])
  assert n > 0
  if os.path.basename(flagfile) == "paper_l3c.flags":
    assert n == 5008395


def test_adam_option_matches_optax_adam_and_unknown_optimizer_fails():
  tx = step_lib.make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.01), 1000)
  p = {"w": jnp.asarray([1.0, -2.0])}
  g = {"w": jnp.asarray([0.5, -0.01])}
  upd, _ = tx.update(g, tx.init(p), p)
  ref, _ = optax.adam(0.01).update(g, optax.adam(0.01).init(p), p)
  np.testing.assert_allclose(np.asarray(upd["w"]), np.asarray(ref["w"]), rtol=1e-6)
  with pytest.raises(ValueError, match="unknown optimizer"):
    step_lib.make_optimizer(TrainConfig(optimizer="sgd"), 10)


def test_warns_loudly_when_an_accelerator_plugin_is_installed_but_jax_runs_on_the_cpu(
    monkeypatch, capsys):
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  real = metadata.version

  def fake_version(name):
    if name == "jax-cuda12-plugin":
      return "0.10.2"
    if name in loop._ACCELERATOR_PACKAGES:
      raise metadata.PackageNotFoundError(name)
    return real(name)

  loop._warn_if_accelerator_unused()
  assert capsys.readouterr().err == ""  # none installed here
  monkeypatch.setattr(metadata, "version", fake_version)
  loop._warn_if_accelerator_unused()
  err = capsys.readouterr().err
  assert err.startswith("WARNING: jax-cuda12-plugin installed but JAX runs on the CPU")


def test_train_clock_counts_training_time_and_times_checkpoints(monkeypatch):
  """TrainClock: tick adds the time since the last mark; skip (after validation) and saved
  (after a checkpoint) drop it; a timed checkpoint is due that many minutes after the last."""
  from l3c_jax.train import loop  # pylint: disable=g-import-not-at-top
  now = [1000.0]
  monkeypatch.setattr(loop.time, "time", lambda: now[0])
  clock = loop.TrainClock(50.0, checkpoint_every_minutes=2)
  now[0] += 30
  clock.tick()
  assert clock.seconds == 80.0
  now[0] += 20  # validation
  clock.skip()
  now[0] += 5
  clock.tick()
  assert clock.seconds == 85.0
  assert not clock.checkpoint_due()
  now[0] += 65  # 120 s since the start
  assert clock.checkpoint_due()
  clock.saved()
  now[0] += 10
  clock.tick()
  assert clock.seconds == 95.0 and not clock.checkpoint_due()
  assert not loop.TrainClock(0.0, checkpoint_every_minutes=0).checkpoint_due()
