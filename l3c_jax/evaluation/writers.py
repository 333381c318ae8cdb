"""Writers of an evaluation's results: CSV, strict JSON, environment header, the result folder."""

import csv
import json
import math
import os
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from l3c_jax import figures
from l3c_jax.evaluation import classical, tables


def write_csv(path: str, rows: Sequence[Mapping[str, Any]],
              columns: Optional[Sequence[str]] = None) -> None:
  """Writes dict rows as CSV (columns: given, else the union of keys in first-seen order)."""
  if columns is None:
    columns = tables.ordered_unique(k for r in rows for k in r)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
      writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def _json_safe(obj):
  if isinstance(obj, dict):
    return {str(k): _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, np.generic):
    obj = obj.item()
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def write_json(path: str, payload: Mapping[str, Any]) -> None:
  """Writes strict JSON (NaN/inf become null, numpy scalars become numbers)."""
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_json_safe(payload), f, indent=2, allow_nan=False)
    f.write("\n")


def environment_info() -> Dict[str, Any]:
  """Library versions, codec library versions and the git commit, for result headers."""
  info: Dict[str, Any] = {"python": sys.version.split()[0], "numpy": np.__version__}
  try:
    ic = classical.import_imagecodecs()
    info["imagecodecs"] = ic.__version__
    for fn in ("png_version", "webp_version", "jpeg2k_version", "jpegxl_version"):
      try:
        info[fn.replace("_version", "")] = getattr(ic, fn)()
      except Exception:  # pylint: disable=broad-except
        pass
  except ImportError:
    info["imagecodecs"] = None
  try:
    import l3c_jax  # pylint: disable=import-outside-toplevel
    info["l3c_jax"] = l3c_jax.__version__
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, check=True,
                            capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           check=True, capture_output=True, text=True, timeout=10).stdout.strip()
    info["commit"] = commit + ("+dirty" if dirty else "")
  except Exception:  # pylint: disable=broad-except
    info["commit"] = None
  return info


def write_results(output_dir: str, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                  notes: Sequence[str] = (), title: str = "Lossless bpsp") -> Dict[str, str]:
  """Writes results.json, results.md, per_image.csv, summary.csv and chart.png.

  Args:
    output_dir: created if missing.
    rows: per-image rows from `runner.evaluate_images`.
    settings: run settings (flags, codec settings, environment) recorded in JSON and Markdown.
    notes: skipped codecs / images / models, shown in the Markdown.
    title: title of the Markdown and the chart.
  Returns:
    dict name -> path of every written file.
  """
  os.makedirs(output_dir, exist_ok=True)
  summary = tables.summarize(rows)
  paths = {k: os.path.join(output_dir, f) for k, f in (
      ("json", "results.json"), ("markdown", "results.md"), ("per_image_csv", "per_image.csv"),
      ("summary_csv", "summary.csv"), ("chart", "chart.png"))}
  write_json(paths["json"], {"settings": settings, "notes": list(notes), "summary": summary,
                             "per_image": list(rows)})
  write_csv(paths["per_image_csv"], rows)
  write_csv(paths["summary_csv"], summary)
  md = [f"# {title}\n\n", tables.settings_markdown(settings)]
  if notes:
    md.append("\nNotes:\n" + "".join(f"- {n}\n" for n in notes))
  md.append("\n" + tables.summary_markdown(summary))
  md.append(tables.per_image_markdown(rows))
  with open(paths["markdown"], "w", encoding="utf-8") as f:
    f.write("".join(md))
  categories, series = tables.bar_series(summary)
  figures.bar_chart(categories, series, paths["chart"], title=title,
                    ylabel="bits per sub-pixel (mean per image)")
  return paths
