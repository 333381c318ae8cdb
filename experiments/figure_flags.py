"""Flags and inputs shared by experiments/sample.py and experiments/bitcost.py.

Imported as a module by both, so the flags are defined once even when both scripts are loaded
into one process (tests).
"""

import os
import sys

from absl import flags

flags.DEFINE_string("image", "../shared/data/kodak/kodim23.png", "Input image (any Pillow format).")
flags.DEFINE_integer("crop", 256, "Centre crop side in pixels (trimmed to a multiple of 2^S); "
                     "0: the whole image.")
flags.DEFINE_string("model", "", "Exported model directory (or training workdir); "
                    "empty: the shipped default model.")
flags.DEFINE_string("output", None, "Output PNG (default: <script>_<image name>.png here).")
FLAGS = flags.FLAGS


def load_inputs(script: str):
  """-> (model, pixels uint8 [h, w, 3] centre crop, output path); exits with a one-line error."""
  from l3c_jax import model_io, visualize  # pylint: disable=import-outside-toplevel
  try:
    model = model_io.load_model(FLAGS.model) if FLAGS.model else model_io.load_default_model()
  except model_io.ModelError as e:
    sys.exit(f"error: {e}")
  pixels = visualize.center_crop(visualize.load_rgb(FLAGS.image), FLAGS.crop,
                                 model.config.padding_factor)
  name = os.path.basename(FLAGS.image)
  return model, pixels, FLAGS.output or f"{script}_{os.path.splitext(name)[0]}.png"


def save_figure(fig, output: str) -> None:
  """Writes the PIL figure (creating the folder) and says where."""
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  fig.save(output)
  print(f"wrote {output} ({fig.width}x{fig.height})")
