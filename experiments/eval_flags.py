"""Flags shared by experiments/evaluate.py and experiments/reproduce_table.py.

Defined once here, so both launchers can be loaded into one process (tests); each launcher
adopts them (`flags.adopt_module_key_flags`) so its `--help` lists them.
"""

from absl import flags

DEFAULT_DATA_DIR = "../shared/data"

# The training launchers define --data_dir too (l3c_jax.train.config, guarded the same way):
# whichever module comes first defines it, and it stays a key flag here either way.
if "data_dir" not in flags.FLAGS:
  flags.DEFINE_string("data_dir", None, f"Folder holding the set folders (default "
                      f"{DEFAULT_DATA_DIR}).")
flags.declare_key_flag("data_dir")
flags.DEFINE_string("sets", "", "Comma-separated sets: named sets (kodak, clic_mobile, ...), "
                    "sub-paths of --data_dir (val/mcmaster) or absolute folders (empty: the "
                    "launcher's default).")
flags.DEFINE_integer("max_images", 0, "Use only the first N images of each set (0: all).")
flags.DEFINE_string("output_dir", None, "Where the results, tables and chart.png go.")
flags.DEFINE_string("codecs", "png,webp,jpeg2000,jpegxl",
                    "Classical codecs: any of png,webp,jpeg2000,jpegxl; 'all'; 'none'.")


def data_dir() -> str:
  """--data_dir, or its default when not given."""
  return flags.FLAGS.data_dir or DEFAULT_DATA_DIR
