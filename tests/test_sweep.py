"""Sweeps that survive (l3c_jax/train/sweep_loop.py): resume, per-member NaN guard, validation
per member, members over a device mesh.

The run-level tests share two tiny sweeps (module fixtures): R, 2 members trained 6 steps
without interruption, and N, R's members with a diverging member (learning-rate scale 1e30)
between them.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from l3c_jax import model_io
from l3c_jax.models import L3CConfig
from l3c_jax.train import ensemble, loop, sweep_loop
from l3c_jax.train.config import ExperimentConfig, TrainConfig

from conftest import write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)
CONFIG = ExperimentConfig(model=TINY, train=TrainConfig(
    crop_size=16, batch_size=2, learning_rate=1e-3, num_steps=6, log_every=2, eval_every=3,
    checkpoint_every=2, num_workers=0, val_crop_size=16, val_batch_size=2, val_max_images=4))
W = [1.0, 1.0, 1.0]
MEMBERS = {"seeds": [0, 1], "lr_scales": [1.0, 2.0], "soft_sigmas": [2.0, 2.0],
           "scale_weights": [W, [1.0, 0.5, 0.5]]}
# R's members with a diverging one (index 1) between them.
MEMBERS_NAN = {"seeds": [0, 7, 1], "lr_scales": [1.0, 1e30, 2.0], "soft_sigmas": [2.0] * 3,
               "scale_weights": [W, W, [1.0, 0.5, 0.5]]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  base = tmp_path_factory.mktemp("sweep_data")
  return (write_images(base / "train", 5, 24, 28, seed=0),
          write_images(base / "val", 4, 24, 28, seed=1))


@pytest.fixture(scope="module")
def run_r(data, tmp_path_factory):
  work = str(tmp_path_factory.mktemp("sweep_r"))
  return work, sweep_loop.train_sweep(CONFIG, MEMBERS, work, data[0], data[1], mode="loop")


@pytest.fixture(scope="module")
def run_n(data, tmp_path_factory):
  work = str(tmp_path_factory.mktemp("sweep_n"))
  return work, sweep_loop.train_sweep(CONFIG, MEMBERS_NAN, work, data[0], None, mode="loop")


def _params(work, j):
  return jax.tree_util.tree_leaves(
      model_io.load_model(os.path.join(work, f"member_{j}", "model")).params)


def _assert_same_params(work_a, ja, work_b, jb, **tol):
  for a, b in zip(_params(work_a, ja), _params(work_b, jb)):
    if tol:
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)
    else:
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _records(work):
  with open(os.path.join(work, sweep_loop.LOG_NAME)) as f:
    return [json.loads(line) for line in f]


def test_member_mesh_plan():
  # (devices used, members per device, padded members)
  assert ensemble.member_mesh_plan(4, 4) == (4, 1, 4)
  assert ensemble.member_mesh_plan(3, 4) == (3, 1, 3)
  assert ensemble.member_mesh_plan(5, 4) == (3, 2, 6)
  assert ensemble.member_mesh_plan(6, 4) == (3, 2, 6)
  assert ensemble.member_mesh_plan(3, 2) == (2, 2, 4)
  assert ensemble.member_mesh_plan(7, 1) == (1, 7, 7)


def test_metrics_writer_drop_after(tmp_path):
  w = loop.MetricsWriter(str(tmp_path), "m.jsonl")
  for s in (2, 4, 6):
    w.write({"step": s, "member": 0})
  with open(w.path, "a") as f:
    f.write('{"step": 8, "mem')  # a line cut short by a kill
  assert w.drop_after(4) == 2
  assert [r["step"] for r in map(json.loads, open(w.path))] == [2, 4]
  assert w.drop_after(4) == 0


@pytest.mark.slow
def test_interrupted_sweep_resumes_to_the_uninterrupted_result(run_r, data, tmp_path, capsys):
  work_r, result_r = run_r
  work = str(tmp_path / "w")
  calls = {"n": 0}

  def stop_after_3():
    calls["n"] += 1
    return calls["n"] > 3  # polled before each step: 3 steps, then a checkpoint at 3

  first = sweep_loop.train_sweep(CONFIG, MEMBERS, work, data[0], data[1], mode="loop",
                                 should_stop=stop_after_3)
  assert first["step"] == 3
  assert sorted(int(d) for d in os.listdir(os.path.join(work, "checkpoints"))) == [2, 3]
  capsys.readouterr()
  second = sweep_loop.train_sweep(CONFIG, MEMBERS, work, data[0], data[1], mode="loop")
  assert "Resuming the sweep from step 3" in capsys.readouterr().out
  assert second["step"] == 6
  for j in range(2):
    _assert_same_params(work, j, work_r, j)
    assert second["members"][j]["val_bpsp"] == pytest.approx(
        result_r["members"][j]["val_bpsp"], rel=1e-6)
  # The log: no (step, member, kind) twice, validation per member at steps 3 and 6.
  recs = _records(work)
  keys = [(r["step"], r["member"], "val_bpsp" in r) for r in recs]
  assert len(keys) == len(set(keys))
  assert sorted(k for k in keys if k[2]) == [(3, 0, True), (3, 1, True), (6, 0, True),
                                            (6, 1, True)]
  assert sorted(k for k in keys if not k[2]) == sorted(
      (s, j, False) for s in (2, 4, 6) for j in range(2))
  # A rerun after a kill past the last checkpoint drops the records written since.
  with open(os.path.join(work, sweep_loop.LOG_NAME), "a") as f:
    f.write(json.dumps({"step": 7, "member": 0, "bpsp": 1.0}) + "\n")
  # Other sweep flags on this workdir are refused in one line.
  other = dict(MEMBERS, lr_scales=[1.0, 3.0])
  with pytest.raises(sweep_loop.SweepError, match=r"--sweep_lr_scales\)") as e:
    sweep_loop.train_sweep(CONFIG, other, work, data[0], data[1])
  assert "\n" not in str(e.value)
  third = sweep_loop.train_sweep(CONFIG, MEMBERS, work, data[0], data[1], mode="loop")
  assert third["step"] == 6
  assert max(r["step"] for r in _records(work)) == 6


@pytest.mark.slow
def test_validation_records_per_member(run_r, data):
  work, result = run_r
  recs = [r for r in _records(work) if "val_bpsp" in r]
  assert sorted((r["step"], r["member"]) for r in recs) == [(3, 0), (3, 1), (6, 0), (6, 1)]
  # The record of member j at step 6 is loop.evaluate of member j's final weights.
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from l3c_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from l3c_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  val = pipeline.center_crops(pipeline.list_images(data[1]), 16, 4)
  mesh = loop.make_mesh()
  p_eval = jax.jit(lambda p, x, w: step_lib.eval_step(p, x, TINY, w))
  for j in range(2):
    params = model_io.load_model(os.path.join(work, f"member_{j}", "model")).params
    params = jax.tree_util.tree_map(jnp.asarray, params)
    v = loop.evaluate(params, TINY, val, 2, p_eval, mesh)
    (rec,) = [r for r in recs if r["step"] == 6 and r["member"] == j]
    assert rec["val_bpsp"] == pytest.approx(v["val_bpsp"], rel=1e-6)
    assert np.isfinite(rec["val_bpsp"])
  assert recs[-1]["val_bpsp"] != recs[-2]["val_bpsp"]  # really two different members


@pytest.mark.slow
def test_diverged_member_is_frozen_and_reported_and_the_others_go_on(run_r, run_n, capsys):
  work_r, _ = run_r
  work_n, result = run_n
  # The others equal the sweep without the diverging member.
  _assert_same_params(work_n, 0, work_r, 0)
  _assert_same_params(work_n, 2, work_r, 1)
  assert [m["status"] for m in result["members"]] == ["trained", "diverged", "trained"]
  assert result["members"][1]["diverged_at"] == 2  # its first logging window
  assert result["step"] == 6
  recs = _records(work_n)
  assert {r["member"] for r in recs} == {0, 2}  # no records of the diverged member
  assert all(np.isfinite(r["bpsp"]) for r in recs)
  # Frozen at its last finite state: here its initialization (every step was non-finite).
  init = ensemble.create_states(TINY, _optimizer(), [7], [1e30])
  for a, b in zip(_params(work_n, 1), jax.tree_util.tree_leaves(ensemble.unstack(init, 0).params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with open(os.path.join(work_n, "member_1", "model", "config.json")) as f:
    assert "diverged" in f.read()


def _optimizer():
  from l3c_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  return step_lib.make_optimizer(CONFIG.train, 2)  # 5 images, batch 2


_MESH_SCRIPT = textwrap.dedent("""
  import dataclasses, sys
  import jax
  from l3c_jax.train import sweep_loop
  sys.path.insert(0, {tests!r})
  import test_sweep as t
  assert jax.device_count() == 4, jax.devices()
  # Two steps (one logging window): RMSprop's first steps are ~lr * sign(gradient), so over
  # more steps float noise of another summation order grows past any useful tolerance.
  config = dataclasses.replace(t.CONFIG, train=dataclasses.replace(t.CONFIG.train, num_steps=2))
  for devices, work in ((1, {w1!r}), (4, {w4!r}), (2, {w2!r})):
    r = sweep_loop.train_sweep(config, t.MEMBERS_NAN, work, {data!r}, None, mode="loop",
                               num_devices=devices)
    assert [m["status"] for m in r["members"]] == ["trained", "diverged", "trained"], r
  print("OK")
""")


@pytest.mark.slow
def test_members_over_four_devices_equal_the_one_device_sweep(data, tmp_path):
  w1, w4, w2 = str(tmp_path / "w1"), str(tmp_path / "w4"), str(tmp_path / "w2")
  env = dict(os.environ)
  # A subprocess: XLA reads the device count once, when the backend starts.
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      " --xla_force_host_platform_device_count=4").strip()
  env["JAX_PLATFORMS"] = "cpu"
  r = subprocess.run([sys.executable, "-c", _MESH_SCRIPT.format(
      tests=os.path.join(ROOT, "tests"), w1=w1, w4=w4, w2=w2, data=data[0])],
                     env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  # 3 members: on 1 device all three; on 4 devices 3 are used, one member each; on 2 devices
  # two each, with one frozen padding member.
  assert "1 of 4 x cpu device(s), 3 member(s) each" in r.stdout
  assert "3 of 4 x cpu device(s), 1 member(s) each" in r.stdout
  assert "2 of 4 x cpu device(s), 2 member(s) each, 1 frozen padding member(s)" in r.stdout
  for work in (w4, w2):
    for j in range(3):
      # Other programs per device (1 or 2 members instead of 3): other summation orders, and
      # RMSprop divides by sqrt(v) (as in tests/test_ensemble.py).
      _assert_same_params(work, j, w1, j, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_killed_sweep_process_resumes(data, tmp_path):
  """experiments/sweep.py killed with SIGKILL (possibly mid-checkpoint) resumes on rerun."""
  work = tmp_path / "w"
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "sweep.py"),
         "--model.num_channels=4", "--model.num_res_blocks=1", "--model.latent_channels=2",
         "--model.num_mixtures=2", "--train.crop_size=16", "--train.batch_size=2",
         "--train.num_workers=0", "--train.log_every=2", "--train.checkpoint_every=2",
         "--sweep_seeds=0,1", f"--workdir={work}", f"--data_dir={data[0]}"]
  env = dict(os.environ, L3C_JAX_CACHE_DIR="off")
  proc = subprocess.Popen(cmd + ["--train.num_steps=100000"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  ckpt_dir = work / "checkpoints"
  deadline = time.time() + 600
  while time.time() < deadline and proc.poll() is None:
    steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit()] if ckpt_dir.exists() else []
    if [s for s in steps if s >= 4]:
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = max(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
  assert saved >= 4
  r = subprocess.run(cmd + [f"--train.num_steps={saved + 2}"], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
  assert f"Resuming the sweep from step {saved}" in r.stdout
  assert "member 1 (seeds=1" in r.stdout and f"trained to step {saved + 2}" in r.stdout
  recs = _records(str(work))
  keys = [(r["step"], r["member"]) for r in recs]
  assert len(keys) == len(set(keys)) and max(k[0] for k in keys) == saved + 2
