r"""Measures lossless bpsp on image folders: our learned codec beside PNG, WebP, JPEG 2000, JPEG XL.

For every image: our real coded file (actual bpsp), our model's likelihood (theoretical bpsp), a
bit-exact round-trip check and encode/decode times; and each classical codec's real coded file
through `imagecodecs` (PNG zlib 9, WebP lossless method 6 / level 100, JPEG 2000 reversible,
JPEG XL lossless effort 9), each decoded and checked bit-exact, with times. Writes
results.json, results.md, per_image.csv, summary.csv and chart.png to --output_dir.

Images are evaluated in their own mode (gray stays gray, palette stays palette) by our codec
and, as far as each supports it, by the classical codecs; bpp and bpsp follow the one counting
rule of l3c_jax/evaluation/counting.py (a gray image has one sub-pixel per pixel), the same as
`l3c-jax eval`.

Usage (from the repository root):
  python experiments/evaluate.py --data_dir=../shared/data --sets=kodak,val/mcmaster,val/cset14 \
      --output_dir=/tmp/eval_kodak
  python experiments/evaluate.py --sets=kodak --ours=false --output_dir=/tmp/kodak_classical
"""

import os
import sys
import time

from absl import app
from absl import flags

from l3c_jax.evaluation import classical, runner, sets, tables, writers

import eval_flags  # pylint: disable=g-bad-import-order  (a sibling in experiments/)
import model_flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(eval_flags)  # --help lists the shared flags too
flags.adopt_module_key_flags(model_flags)
DEFAULT_SETS = "kodak"

flags.DEFINE_string("model_name", "L3C-JAX", "Name of our model in tables.")
flags.DEFINE_bool("ours", True, "Evaluate our learned codec.")
flags.DEFINE_string("title", "Lossless compression, bits per sub-pixel", "Report title.")


def _log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required")
  notes = []
  t0 = time.time()
  try:
    codecs = classical.parse_codecs(FLAGS.codecs)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  learned = runner.load_learned([(FLAGS.model_name, FLAGS.model)] if FLAGS.ours else [], notes)
  try:
    rows, resolved, codecs = runner.run_benchmark(sets.parse_list(FLAGS.sets or DEFAULT_SETS),
                                                  eval_flags.data_dir(), codecs, learned,
                                                  FLAGS.max_images, notes)
  except ValueError as e:  # a named set that does not exist
    raise app.UsageError(str(e)) from e
  if not rows:
    raise app.UsageError("nothing was evaluated (no images, no codecs and no model)")
  settings = {
      "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
      "sets": {es.label: es.directory for es in resolved},
      "model": (FLAGS.model or "default") if learned else "not evaluated",
      "max_images": FLAGS.max_images or "all",
      "codec_settings": {classical.CODEC_NAMES[c]: classical.CODEC_SETTINGS[c] for c in codecs},
      "environment": writers.environment_info(),
      "wall_clock_s": round(time.time() - t0, 1),
  }
  paths = writers.write_results(FLAGS.output_dir, rows, settings, notes, title=FLAGS.title)
  for s in tables.summarize(rows):
    theo = ("" if s["bpsp_theoretical_mean"] is None
            else f"  theoretical {s['bpsp_theoretical_mean']:.4f}")
    print(f"{s['set']:>16s}  {s['method']:<12s} {s['num_images']:3d} images  "
          f"mean {s['bpsp_mean']:.4f} bpsp ({s['bpp_mean']:.4f} bpp)  "
          f"total {s['bpsp_total']:.4f}{theo}  "
          f"enc {s['encode_s_median']:.3f}s dec {s['decode_s_median']:.3f}s (median)")
  _log("wrote " + ", ".join(paths.values()))
  mismatches = [r for r in rows if not r["exact"]]
  if mismatches:
    _log(f"ERROR: {len(mismatches)} round trips were not bit-exact")
    return 1
  return 0


if __name__ == "__main__":
  app.run(main)
