r"""Bit-cost heat maps: where the model spends its bits, per group of its coding plan.

Writes one PNG: image | bits of x | bits of the next coarser group | ... (L3C: z^(1), ...,
z^(S-1); the RGB pyramids: x^(1), ..., x^(S-1)). Each map is the model's -log2 p per position:
summed over the channels of a position (3 colour channels of a pixel, or the C_q channels of a
latent), at the group's resolution (a position of scale s covers 2^s x 2^s pixels) and shown
upsampled (nearest) to the image size so the panels align; the pixel phases of the phased
pyramids are put back on their grid (a known phase costs 0). Titles give each group's bpsp (bits
over the 3*H*W sub-pixels of the RGB crop); the top group costs a constant under its uniform prior
and is only listed in the header. Each panel has its own colour bar (drawn by
matplotlib, l3c_jax/figures.py), 0 to a high percentile of its values (--shared_scale: one range
for all).

Usage (from the repository root):
  python experiments/bitcost.py --image=../shared/data/kodak/kodim23.png --output=/tmp/bits.png
"""

import os

from absl import app
from absl import flags

import figure_flags  # a sibling in experiments/

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(figure_flags)  # --help lists --image, --crop, --model, --output

flags.DEFINE_enum("cmap", "inferno", ["inferno", "viridis", "gray"], "Colour map.")
flags.DEFINE_float("percentile", 99.5, "Colour range top: this percentile of each map's values.")
flags.DEFINE_boolean("shared_scale", False, "One colour range for all maps (the max of theirs).")


def bit_maps(config, params, x):
  """Per-position bits of every coded group at image resolution and the bpsp of every group.

  Args:
    x: [1, H, W, 3] float32 pixels.
  Returns:
    (maps, bpsp, scales): maps {group: numpy [H, W]} for the groups with a head, finest first
    ('x': bits per pixel; a coarser group: bits per position of its grid, repeated over the
    2^s x 2^s pixels it covers); bpsp {group: float} for every group (the top one under its
    uniform prior last); scales {group: paper scale s}.
  """
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from l3c_jax import figures, losses  # pylint: disable=import-outside-toplevel
  from l3c_jax.models import families  # pylint: disable=import-outside-toplevel
  from l3c_jax.models import plan as plan_lib  # pylint: disable=import-outside-toplevel

  maps, bits = jax.device_get((losses.bit_maps(config, params, x),
                               losses.model_bits(config, params, x)))
  n = 3 * x.shape[1] * x.shape[2]
  bpsp = {k: float(v) / n for k, v in bits.items()}
  scales = plan_lib.group_scales(families.plan(config))
  maps = {g: figures.upsample_nearest(np.asarray(m[0], np.float64), 2 ** scales[g])
          for g, m in maps.items()}
  return maps, bpsp, scales


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from l3c_jax import figures  # pylint: disable=import-outside-toplevel

  model, pixels, output = figure_flags.load_inputs("bitcost")
  name = os.path.basename(FLAGS.image)
  cfg = model.config
  height, width = pixels.shape[:2]
  maps, bpsp, scales = bit_maps(cfg, model.params, jnp.asarray(pixels, jnp.float32)[None])

  tops = [max(float(np.percentile(m, FLAGS.percentile)), 1e-6) for m in maps.values()]
  if FLAGS.shared_scale:
    tops = [max(tops)] * len(tops)
  top_name = list(bpsp)[-1]  # finest first: the last is the top group (uniform prior)
  total = sum(bpsp.values())
  print(f"{name} {height}x{width}: {total:.4f} bpsp = " +
        " + ".join(f"{k} {v:.4f}" for k, v in bpsp.items()) + f" ({top_name} uniform)")
  titles = [f"{name}\n{height}x{width}"]
  units = []
  for key, m in maps.items():
    s = scales[key]
    units.append("bits per pixel (R+G+B)" if s == 0 else
                 f"bits per {key} position ({2 ** s}x{2 ** s} pixels)")
    titles.append(f"{key}: {bpsp[key]:.3f} bpsp\nmean {m.mean():.2f}, max {m.max():.1f} bits")
  title = (f"Bits per scale: {total:.3f} bpsp = " +
           " + ".join(f"{k} {v:.3f}" for k, v in bpsp.items()) +
           f" ({top_name}: uniform prior, not shown)")
  chart = figures.heat_maps(pixels, list(maps.values()), titles, units, tops, output, title=title,
                            cmap=FLAGS.cmap)
  figure_flags.report_figure(chart)
  return 0


if __name__ == "__main__":
  app.run(main)
