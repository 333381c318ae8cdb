"""Flags shared by experiments/evaluate.py and experiments/reproduce_table.py.

Defined once here, so both launchers can be loaded into one process (tests); each launcher
adopts them (`flags.adopt_module_key_flags`) so its `--help` lists them.
"""

from absl import flags

flags.DEFINE_string("data_dir", "../shared/data", "Folder holding the set folders.")
flags.DEFINE_string("sets", "", "Comma-separated sets: named sets (kodak, clic_mobile, ...), "
                    "sub-paths of --data_dir (val/mcmaster) or absolute folders (empty: the "
                    "launcher's default).")
flags.DEFINE_integer("max_images", 0, "Use only the first N images of each set (0: all).")
flags.DEFINE_string("output_dir", None, "Where the results, tables and chart.png go.")
flags.DEFINE_string("codecs", "png,webp,jpeg2000,jpegxl",
                    "Classical codecs: any of png,webp,jpeg2000,jpegxl; 'all'; 'none'.")
