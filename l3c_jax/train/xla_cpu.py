"""XLA:CPU settings of the training launchers (set before JAX starts its backend).

XLA:CPU in jaxlib 0.10.2 hands every convolution to YNNPACK by default, and YNNPACK's kernel
gradients are slow: in a paper-config training step (batch 4 of 64^2, one thread, profiled with
`jax.profiler`) the kernel gradients of the 3x3 convs took 41 % of the step's time against 35 %
for all forward and input-gradient convs, which do twice their arithmetic. With YNNPACK kept for
dots only, XLA's own (Eigen) convolutions run, and the step was 3.4x faster at batch 16 of 64^2
and 1.8x at batch 8 of 128^2 (medians; 1.3-5.4x per round) in interleaved same-run A/Bs on the
loaded shared machine (docs/measurements.md#training-step); results differ only in float32
summation order. Only the training launchers call `use_training_flags`: the library, the CLI and
the codec keep XLA's defaults.
"""

import os

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# YNNPACK for dots (the 1x1 convs' kernel gradients are dots, `models.layers`), not for convs.
TRAINING_YNN_FUSION = "individual_dot"


def use_training_flags(environ=None) -> bool:
  """Adds `--xla_cpu_experimental_ynn_fusion_type=individual_dot` to XLA_FLAGS.

  Only takes effect before JAX initializes its backend (the first computation or device query
  of the process), so launchers call it first thing. An XLA_FLAGS that sets the flag already is
  left as it is (to time or train with XLA's default: `--xla_cpu_experimental_ynn_fusion_type=
  individual_convolution,individual_dot`). The flag is ignored by GPU and TPU backends.

  Returns:
    whether the flag was added.
  """
  environ = os.environ if environ is None else environ
  current = environ.get("XLA_FLAGS", "")
  if YNN_FUSION_FLAG in current:
    return False
  environ["XLA_FLAGS"] = f"{current} {YNN_FUSION_FLAG}={TRAINING_YNN_FUSION}".strip()
  return True
