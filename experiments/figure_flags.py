"""Flags and inputs shared by experiments/sample.py and experiments/bitcost.py.

Imported as a module by both, so the flags are defined once even when both scripts are loaded
into one process (tests); both adopt them (`flags.adopt_module_key_flags`) so `--help` lists them.
"""

import os
import sys

from absl import flags

import model_flags  # a sibling in experiments/

flags.adopt_module_key_flags(model_flags)

flags.DEFINE_string("image", "../shared/data/kodak/kodim23.png", "Input image (any Pillow format).")
flags.DEFINE_integer("crop", 256, "Centre crop side in pixels (trimmed to a multiple of 2^S); "
                     "0: the whole image.")
flags.DEFINE_string("output", None, "Output PNG (default: <script>_<image name>.png here).")
FLAGS = flags.FLAGS


def load_inputs(script: str):
  """-> (model, pixels uint8 [h, w, 3] centre crop, output path); exits with a one-line error.

  The network sees colours, so gray and palette images are shown and fed as RGB here.
  """
  from l3c_jax import model_io  # pylint: disable=import-outside-toplevel
  from l3c_jax.data import images  # pylint: disable=import-outside-toplevel
  try:
    model = model_flags.load_model()
  except model_io.ModelError as e:
    sys.exit(f"error: {e}")
  try:
    rgb = images.to_rgb(images.read_image(FLAGS.image))
  except (images.ImageError, OSError) as e:
    sys.exit(f"error: {FLAGS.image}: {e}")
  pixels = images.center_crop(rgb, FLAGS.crop, model.config.padding_factor)
  name = os.path.basename(FLAGS.image)
  return model, pixels, FLAGS.output or f"{script}_{os.path.splitext(name)[0]}.png"


def report_figure(chart) -> None:
  """Says where the figure went."""
  print(f"wrote {chart.path}")
