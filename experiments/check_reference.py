"""Checks l3c-jax against the official L3C-PyTorch parity fixture.

Imports the official weights with `l3c_jax.convert.import_official`, runs our model on every
input of the fixture and prints per scale (x, z1, z2, z3): our bits, the official bits, their
relative difference and whether the symbols are identical; then totals, bpsp and the largest
head difference. Exits with status 1 when any symbol differs or any bits differ by more than
1e-4 relative (or heads by more than 1e-4 absolute).

  python experiments/check_reference.py
  python experiments/check_reference.py --reference_dir=../shared/reference/l3c_pytorch_tiny

Runtime: ~10 s on a 2-core CPU (two small images, tiny model, mostly compilation).
"""

import sys

from absl import app
from absl import flags

from l3c_jax import reference_check

_REFERENCE_DIR = flags.DEFINE_string(
    "reference_dir", "tests/testdata/l3c_pytorch_tiny",
    "Directory with weights_tiny.npz, inputs.npz, expected.npz and expected.json.")
_BITS_RTOL = flags.DEFINE_float("bits_rtol", 1e-4, "Allowed relative difference of the bits.")
_HEAD_ATOL = flags.DEFINE_float("head_atol", 1e-4, "Allowed absolute difference of head outputs.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
  report = reference_check.check_reference(_REFERENCE_DIR.value, bits_rtol=_BITS_RTOL.value,
                                           head_atol=_HEAD_ATOL.value)
  print(reference_check.format_report(report))
  if not report.ok:
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
