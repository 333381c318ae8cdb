r"""Reproduces the paper's Table 1 in one command: every model and classical codec, named sets.

Evaluates every model given by --models (ours, imported official weights, the RGB baselines) plus
the shipped default model, and PNG / JPEG 2000 / WebP / JPEG XL lossless (imagecodecs, strongest
settings, every decode checked bit-exact) on the same images in the same run, on each named set
that exists under --data_dir:

  openimages_val500  Open Images validation 500 (folder open_images_val500 or val_oi_500_r, ...)
  clic_mobile        CLIC 2019 mobile validation (clic_mobile, clic/mobile, mobile_valid, ...)
  clic_pro           CLIC 2019 professional validation (clic_pro, clic/professional, ...)
  div2k_val          DIV2K validation HR (div2k_val, DIV2K_valid_HR, ...)
  kodak              Kodak (kodak)

(see l3c_jax/evaluation/sets.py NAMED_SETS; sub-paths like val/mcmaster work too). Writes to
--output_dir: table.md and table.csv (measured actual and theoretical bpsp beside the published
numbers of experiments/reference/paper_numbers.csv, each with its source tag), chart.png, and the
full per-image results (results.json, results.md, per_image.csv, summary.csv).

A learned model is compared with the paper's L3C row unless its name contains 'rgb_shared'
(-> RGB Shared) or 'rgb' (-> RGB).

Usage (from the repository root):
  python experiments/reproduce_table.py --data_dir=../shared/data \
      --models=official=/path/official_npz_dir,ours=/path/checkpoint --output_dir=/tmp/table1
  python experiments/reproduce_table.py --sets=kodak --max_images=4 --output_dir=/tmp/t1_quick
"""

import os
import sys
import time

from absl import app
from absl import flags

from l3c_jax import figures
from l3c_jax.evaluation import classical, runner, sets, tables, writers

import eval_flags  # pylint: disable=g-bad-import-order  (a sibling in experiments/)

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(eval_flags)  # --help lists the shared flags too
DEFAULT_SETS = "openimages_val500,clic_mobile,clic_pro,div2k_val,kodak"

DEFAULT_PAPER_NUMBERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference",
                                     "paper_numbers.csv")

flags.DEFINE_string("models", "", "Comma-separated name=model_dir pairs (ours, official, rgb).")
flags.DEFINE_bool("default_model", True, "Also evaluate the shipped default model.")
flags.DEFINE_string("default_model_name", "L3C-JAX (default)", "Table name of the default model.")
flags.DEFINE_string("paper_numbers", DEFAULT_PAPER_NUMBERS, "CSV of published numbers.")


def _log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def parse_models(spec: str):
  """'a=/x,b=/y' -> [('a', '/x'), ('b', '/y')]."""
  out = []
  for part in sets.parse_list(spec):
    if "=" not in part:
      raise app.UsageError(f"--models entry {part!r} is not name=model_dir")
    name, path = part.split("=", 1)
    if not name.strip() or not path.strip():
      raise app.UsageError(f"--models entry {part!r} is not name=model_dir")
    out.append((name.strip(), path.strip()))
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required")
  t0 = time.time()
  notes = []
  try:
    codecs = classical.parse_codecs(FLAGS.codecs)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  model_specs = parse_models(FLAGS.models)
  if FLAGS.default_model:
    model_specs.insert(0, (FLAGS.default_model_name, None))
  paper_rows = tables.load_paper_numbers(FLAGS.paper_numbers)
  set_names = sets.parse_list(FLAGS.sets or DEFAULT_SETS)

  learned = runner.load_learned(model_specs, notes)
  rows, resolved, codecs = runner.run_benchmark(set_names, eval_flags.data_dir(), codecs, learned,
                                                FLAGS.max_images, notes, strict_sets=False)
  summary = tables.summarize(rows)
  settings = {
      "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
      "sets": {es.label: es.directory for es in resolved},
      "models": {c.name: c.model_dir or "default" for c in learned} or "none evaluated",
      "max_images": FLAGS.max_images or "all",
      "codec_settings": {classical.CODEC_NAMES[c]: classical.CODEC_SETTINGS[c] for c in codecs},
      "paper_numbers": FLAGS.paper_numbers,
      "environment": writers.environment_info(),
  }
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  if rows:
    settings["wall_clock_s"] = round(time.time() - t0, 1)
    writers.write_results(FLAGS.output_dir, rows, settings, notes,
                         title="Lossless bpsp, per-image details")

  headers, md_rows, records = tables.comparison_rows(summary, paper_rows, set_names)
  md = ["# Table 1: full-resolution lossless bpsp, measured vs published\n\n",
        tables.settings_markdown(settings),
        "\n'ours' = measured in this run (mean of per-image bpsp; learned models: actual = real "
        "file size, theoretical = model likelihood). 'paper' = published number with its tag: "
        "[C] confirmed in a public source, [D] derived by arithmetic from one, [R] recalled from "
        "the paper (unconfirmed), [M] measured earlier on this project's machine. "
        "Empty 'ours' cells: set not found or not measured.\n\n",
        tables.markdown_table(headers, md_rows)]
  if notes:
    md.append("\nNotes:\n" + "".join(f"- {n}\n" for n in notes))
  table_md = os.path.join(FLAGS.output_dir, "table.md")
  with open(table_md, "w", encoding="utf-8") as f:
    f.write("".join(md))
  table_csv = os.path.join(FLAGS.output_dir, "table.csv")
  writers.write_csv(table_csv, records, ["set", "method", "kind", "bpsp_mean", "bpsp_total",
                                        "num_images", "tag", "source", "note"])

  # Chart: measured actual (and theoretical for learned models) plus the published L3C number.
  if summary:
    categories, series = tables.bar_series(summary, include_theoretical=True)
    measured = tables.ordered_unique(s["set"] for s in summary)
    published_l3c = [tables.published_value(paper_rows, "L3C", k) for k in measured]
    if any(p is not None for p in published_l3c):
      series["L3C (paper)"] = [p["bpsp"] if p else None for p in published_l3c]
    figures.bar_chart(categories, series, os.path.join(FLAGS.output_dir, "chart.png"),
                      title="Lossless bpsp (mean per image), lower is better",
                      ylabel="bits per sub-pixel")
  print(open(table_md, encoding="utf-8").read())
  _log(f"wrote {table_md}, {table_csv}" + (", chart.png and per-image results" if rows else ""))
  if any(not r["exact"] for r in rows):
    _log("ERROR: some round trips were not bit-exact")
    return 1
  return 0


if __name__ == "__main__":
  app.run(main)
