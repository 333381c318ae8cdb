r"""Samples an image from the model given its real representation at each scale (paper Sec. 5.4).

For one image (centre-cropped) this writes one PNG grid: the real image; the pixels sampled given
the real scale-1 group of the model's coding plan (L3C: the latent z^(1); the RGB pyramids: the
image x^(1)); scale 1 and the pixels sampled given the real scale 2; ...; everything sampled given
the real scale S. Each column title carries the bpsp still stored at that level (the model's bits
of the real groups of scales s..S, the top one under its uniform prior), e.g. for L3C z1+z2+z3,
z2+z3, z3 = 0.121.

Usage (from the repository root):
  python experiments/sample.py --image=../shared/data/kodak/kodim23.png --output=/tmp/samples.png
  python experiments/sample.py --model=/work/runs/default_cpu/model --num_samples=2 --seed=1
"""

import os
import time

from absl import app
from absl import flags

import figure_flags  # a sibling in experiments/

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(figure_flags)  # --help lists --image, --crop, --model, --output

flags.DEFINE_integer("seed", 0, "PRNG seed of the samples.")
flags.DEFINE_integer("num_samples", 1, "Rows of independent samples.")
flags.DEFINE_boolean("snap_latents", True, "L3C: snap sampled latents to the quantizer levels "
                     "before feeding them to the next decoder (false: continuous, like "
                     "L3C-PyTorch); pixels are always integers.")
flags.DEFINE_boolean("unconditional", False, "Add a column sampling everything, the top scale "
                     "from its uniform prior (nothing stored).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.num_samples < 1:
    raise app.UsageError("--num_samples must be >= 1")
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from l3c_jax import figures, sampling  # pylint: disable=import-outside-toplevel
  from l3c_jax.models import families  # pylint: disable=import-outside-toplevel
  from l3c_jax.models import plan as plan_lib  # pylint: disable=import-outside-toplevel

  model, pixels, output = figure_flags.load_inputs("sample")
  name = os.path.basename(FLAGS.image)
  cfg, params = model.config, model.params
  num_scales = cfg.num_scales
  height, width = pixels.shape[:2]
  x = jnp.asarray(pixels, jnp.float32)[None]

  kept = sampling.bpsp_kept(cfg, params, x)
  group = plan_lib.scale_groups(families.plan(cfg))  # scale -> 'z2' (L3C), 'x2' (pyramids)
  print(f"{name} {height}x{width}: {kept[0]:.4f} bpsp total")
  for s in range(1, num_scales + 1):
    stored = "+".join(group[t] for t in range(s, num_scales + 1))
    print(f"  given {group[s]}: stored {stored} = {kept[s]:.4f} bpsp")

  levels = list(range(1, num_scales + 1)) + ([num_scales + 1] if FLAGS.unconditional else [])
  titles = ["real image\n(everything stored)\n" + f"{kept[0]:.3f} bpsp"]
  for s in levels:
    sampled = ", ".join(group[t] for t in range(s - 1, -1, -1))
    given = f"given real {group[s]}" if s <= num_scales else "nothing given"
    titles.append(f"{given}\nsampled: {sampled}\n{kept[s]:.3f} bpsp stored")
  rows = []
  t0 = time.time()
  key = jax.random.key(FLAGS.seed)
  for r in range(FLAGS.num_samples):
    row = [pixels if r == 0 else None]
    for s in levels:
      key, sub = jax.random.split(key)
      result = sampling.sample_given_scale(cfg, params, x, s, sub,
                                           snap_latents=FLAGS.snap_latents)
      row.append(figures.to_uint8_image(jax.device_get(result.x[0])))
    rows.append(row)
  print(f"sampled {FLAGS.num_samples} x {len(levels)} images in {time.time() - t0:.1f} s")
  row_titles = [f"sample {r + 1}" for r in range(FLAGS.num_samples)] \
      if FLAGS.num_samples > 1 else None
  title = (f"{name}, {height}x{width} crop: model {kept[0]:.3f} bpsp; samples of what is not "
           f"stored (seed {FLAGS.seed})")
  chart = figures.image_grid(rows, output, column_titles=titles, row_titles=row_titles,
                             title=title)
  figure_flags.report_figure(chart)
  return 0


if __name__ == "__main__":
  app.run(main)
