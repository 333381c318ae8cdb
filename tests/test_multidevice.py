"""Any batch on any device count, and multi-process training (l3c_jax/train/distributed.py).

* A batch padded with zero-weight rows has the loss, gradient and metrics of the batch itself.
* The paper's batch 30 trains on 4 (forced CPU) devices and gives the 1-device run's losses and
  weights (a subprocess: XLA reads the device count once, when the backend starts).
* Two real processes on localhost through `jax.distributed` (coordinator on 127.0.0.1) train
  like one process on the same global batch; a SIGTERM to one of them stops both at the same
  step, with one checkpoint; process 0 alone writes metrics and the model.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l3c_jax import model_io
from l3c_jax.models import L3CConfig
from l3c_jax.train import distributed, step as step_lib
from l3c_jax.train.config import TrainConfig

from conftest import random_params, write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = L3CConfig(num_channels=4, num_res_blocks=1, latent_channels=2, num_mixtures=2)


@pytest.mark.slow
def test_zero_weight_padding_rows_leave_loss_gradient_and_metrics_unchanged():
  params = random_params(TINY, seed=3)
  x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
  # 5 rows padded to 8 the way the loop pads (copies of the first rows, weight 0); the copies
  # are perturbed here so that a padding row that counted would change the result.
  padded = np.concatenate([x, 255 - x[:3]])
  w = jnp.asarray([1.0] * 5 + [0.0] * 3)
  grad_fn = jax.jit(jax.value_and_grad(
      lambda p, b, wt: step_lib.loss_fn(p, b, TINY, example_weights=wt), has_aux=True))
  plain_fn = jax.jit(jax.value_and_grad(lambda p, b: step_lib.loss_fn(p, b, TINY),
                                        has_aux=True))
  (loss, metrics), grads = plain_fn(params, x)
  (loss_p, metrics_p), grads_p = grad_fn(params, padded, w)
  # A padding row that counted would move the loss by ~40 %; summing 8 rows instead of 5 moves it
  # by float32 rounding only (4e-5 relative seen without LLVM's optimizations, tests/conftest.py).
  np.testing.assert_allclose(float(loss_p), float(loss), rtol=2e-4)
  for k in metrics:
    np.testing.assert_allclose(float(metrics_p[k]), float(metrics[k]), rtol=2e-4, err_msg=k)
  for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(grads_p)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-7)
  # Evaluation sums: the padded batch's equal the batch's, sub-pixel count included.
  bits = jax.jit(lambda p, b: step_lib.eval_step(p, b, TINY))(params, x)
  bits_p = jax.jit(lambda p, b, wt: step_lib.eval_step(p, b, TINY, wt))(params, padded, w)
  assert float(bits_p["num_subpixels"]) == 5 * 16 * 16 * 3
  for k in bits:
    np.testing.assert_allclose(float(bits_p[k]), float(bits[k]), rtol=2e-4, err_msg=k)


def test_batch_layout_of_one_device_is_the_batch():
  layout = distributed.batch_layout(distributed.make_mesh(), 30)
  assert (layout.padded_size, layout.padding, layout.rows) == (30, 0, tuple(range(30)))
  assert layout.describe() == "batch 30 over 1 device(s): 30 rows each"
  np.testing.assert_array_equal(layout.weights(), np.ones(30, np.float32))
  np.testing.assert_array_equal(layout.weights(28), [1.0] * 28 + [0.0] * 2)


def _env(devices):
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
  env["JAX_PLATFORMS"] = "cpu"
  env["L3C_JAX_CACHE_DIR"] = "off"
  return env


def _train_cmd(work, data, *extra):
  return [sys.executable, os.path.join(ROOT, "experiments", "train.py"),
          "--model.family=l3c", "--model.num_channels=4", "--model.num_res_blocks=1",
          "--model.latent_channels=2", "--model.num_mixtures=2",
          "--train.crop_size=16", "--train.optimizer=adam", "--train.learning_rate=3e-3",
          "--train.num_workers=0", "--train.log_every=1", "--train.eval_every=2",
          "--train.val_crop_size=16", "--train.val_max_images=5", "--train.val_batch_size=3",
          f"--workdir={work}", f"--data_dir={data}", f"--val_dir={data}", *extra]


def _records(work):
  with open(os.path.join(work, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _assert_same_run(work_a, work_b, rtol):
  """Same metric records (train and validation, step by step) and exported weights."""
  ra, rb = _records(work_a), _records(work_b)
  assert [sorted(r) for r in ra] == [sorted(r) for r in rb]
  keys = ("loss", "bpsp", "bpsp_x", "grad_norm", "val_bpsp", "val_bpsp_x", "learning_rate",
          "epoch")
  for a, b in zip(ra, rb):
    assert a["step"] == b["step"]
    for k in keys:
      if k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=rtol, err_msg=f"{k} at step {a['step']}")
  pa = model_io.load_model(os.path.join(work_a, "model")).params
  pb = model_io.load_model(os.path.join(work_b, "model")).params
  for a, b in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=1e-5)


def _run(cmd, env, timeout=900):
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  return r.stdout


@pytest.mark.slow  # two training runs, each compiling (~1-2 min on the loaded 2-core machine)
def test_paper_batch_30_trains_on_4_devices_like_on_1(tmp_path):
  data = write_images(tmp_path / "data", n=8)
  runs = {}
  procs = {}
  for devices in (1, 4):
    work = str(tmp_path / f"work{devices}")
    cmd = _train_cmd(work, data, "--train.batch_size=30", "--train.num_steps=3",
                     "--train.checkpoint_every=2")
    procs[devices] = subprocess.Popen(cmd, cwd=ROOT, env=_env(devices), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
    runs[devices] = work
  out = {}
  for devices, p in procs.items():
    out[devices] = p.communicate(timeout=900)[0]
    assert p.returncode == 0, out[devices][-3000:]
  assert "batch 30 over 1 device(s): 30 rows each\n" in out[1]
  assert ("batch 30 over 4 device(s): 8 rows each, 2 padding row(s) (copies of real crops with "
          "weight 0") in out[4]
  assert "devices: 4 x cpu (1 process(es))" in out[4]
  _assert_same_run(runs[1], runs[4], rtol=2e-4)
  assert [r["devices"] for r in _records(runs[4]) if "loss" in r] == [4, 4, 4]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _two_processes(work, data, *extra, devices_per_process=2):
  """Starts the two processes of one run (coordinator on 127.0.0.1); returns the Popens."""
  port = _free_port()
  procs = []
  for pid in range(2):
    cmd = _train_cmd(work, data, f"--coordinator_address=127.0.0.1:{port}",
                     "--num_processes=2", f"--process_id={pid}", *extra)
    log = open(os.path.join(os.path.dirname(work), f"{os.path.basename(work)}.p{pid}.log"), "w")
    procs.append((subprocess.Popen(cmd, cwd=ROOT, env=_env(devices_per_process), stdout=log,
                                   stderr=subprocess.STDOUT, text=True), log))
  return procs


def _wait(procs, timeout=900):
  outs = []
  for p, log in procs:
    p.wait(timeout=timeout)
    log.close()
    with open(log.name) as f:
      outs.append(f.read())
  for (p, _), out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  return outs


@pytest.mark.slow  # three runs with compilation (several minutes on the loaded 2-core machine)
def test_two_processes_on_localhost_train_like_one_and_stop_together(tmp_path):
  data = write_images(tmp_path / "data", n=8)
  # Batch 6 over 2 processes x 2 devices: 8 rows, 2 of them padding; the 1-process run has
  # one device and no padding.
  common = ("--train.batch_size=6", "--train.num_steps=4", "--train.checkpoint_every=2")
  one = str(tmp_path / "one")
  two = str(tmp_path / "two")
  single = subprocess.Popen(_train_cmd(one, data, *common), cwd=ROOT, env=_env(1),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  outs = _wait(_two_processes(two, data, *common))
  out1 = single.communicate(timeout=900)[0]
  assert single.returncode == 0, out1[-3000:]
  assert "devices: 4 x cpu (2 process(es))" in outs[0]
  assert "2 padding row(s)" in outs[0] and "4 rows made by each of the 2 processes" in outs[0]
  assert "step " not in outs[1]  # process 1 prints no progress lines
  _assert_same_run(one, two, rtol=2e-4)
  # Process 0 alone wrote the records: one per train step and validation, no duplicates.
  assert [r["step"] for r in _records(two)] == [1, 2, 2, 3, 4, 4]
  assert sorted(os.listdir(os.path.join(two, "checkpoints")), key=int) == ["2", "4"]

  # SIGTERM to process 1 alone: both processes stop at the same step and checkpoint it once.
  stop = str(tmp_path / "stop")
  procs = _two_processes(stop, data, "--train.batch_size=6", "--train.num_steps=100000",
                         "--train.checkpoint_every=100000", "--train.eval_every=100000")
  deadline = time.time() + 900
  while time.time() < deadline:
    if os.path.exists(os.path.join(stop, "metrics.jsonl")) and len(_records(stop)) >= 3:
      break
    assert procs[0][0].poll() is None and procs[1][0].poll() is None
    time.sleep(0.5)
  procs[1][0].send_signal(signal.SIGTERM)
  outs = _wait(procs)
  assert "signal 15: checkpointing and stopping (process 1" in outs[1]
  steps = os.listdir(os.path.join(stop, "checkpoints"))
  assert len(steps) == 1, steps
  saved = int(steps[0])
  assert f"step {saved}: a process asked to stop; all checkpoint and stop here" in outs[0]
  assert f"checkpoint at step {saved} written" in outs[0]
  assert max(r["step"] for r in _records(stop)) == saved
  meta_path = os.path.join(stop, "checkpoints", str(saved), "meta", "metadata")
  with open(meta_path) as f:
    assert json.load(f)["data_position"] == saved
