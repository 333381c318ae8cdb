"""The --model flag of the launchers that load one model (evaluate.py, sample.py, bitcost.py).

Defined once here so those launchers can be loaded into one process (tests); each adopts it
(`flags.adopt_module_key_flags`) so its `--help` lists it.
"""

from absl import flags

flags.DEFINE_string("model", "", "Exported model directory (or training workdir); "
                    "empty: the shipped default model.")
FLAGS = flags.FLAGS


def load_model():
  """The model named by --model (the shipped default when empty).

  Raises:
    model_io.ModelError: the directory holds no loadable model.
  """
  from l3c_jax import model_io  # pylint: disable=import-outside-toplevel
  return model_io.load_model(FLAGS.model) if FLAGS.model else model_io.load_default_model()
