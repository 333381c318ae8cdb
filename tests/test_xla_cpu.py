"""The training launchers' XLA:CPU setting (l3c_jax/train/xla_cpu.py)."""

import os
import subprocess
import sys

from l3c_jax.train import xla_cpu

_PROBE = """
import sys
from l3c_jax.train import xla_cpu
if sys.argv[1] == "set":
  xla_cpu.use_training_flags()
import jax, jax.numpy as jnp
f = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
    x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
print("ynn_fusion" in f.lower(jnp.ones((2, 32, 32, 64)), jnp.ones((3, 3, 64, 64))).compile().as_text())
"""


def test_use_training_flags_adds_the_flag_unless_xla_flags_sets_it():
  env = {}
  assert xla_cpu.use_training_flags(env)
  assert env["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  assert xla_cpu.use_training_flags(env)
  assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4",
                                      "--xla_cpu_experimental_ynn_fusion_type=individual_dot"]
  mine = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot"
  env = {"XLA_FLAGS": mine}
  assert not xla_cpu.use_training_flags(env)
  assert env["XLA_FLAGS"] == mine


def test_the_flag_takes_ynnpack_off_the_convolutions():
  """In a fresh process (the flag acts before the backend starts): XLA's default compiles a 3x3
  conv into a YNNPACK fusion, the training setting does not."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = {mode: subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, check=True,
                              capture_output=True, text=True).stdout.split()[-1]
         for mode in ("default", "set")}
  assert out == {"default": "True", "set": "False"}
