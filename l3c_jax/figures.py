"""Every figure of the project, drawn with matplotlib (Agg backend: files only, no display).

Bar charts of bpsp, training curves, bit-cost heat maps and sample grids. Functions take plain
numpy arrays / dicts and labels, write one PNG and return a `Chart` holding the data behind the
figure (values, labels, colours, axis limits), which is what the tests check.

Colours: a method keeps one colour in every chart (`method_color`): the classical codecs and the
published L3C have fixed colours; any other method (our models) gets one from its name, so the
same name is always drawn in the same colour.
"""

import dataclasses
import os
import zlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # no display on the machines that make figures
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

# matplotlib's 'tab10' colours, written out so colours do not depend on the style in use.
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
# Methods that appear in many charts, with colours kept apart from each other.
FIXED_COLORS: Dict[str, str] = {
    "PNG": _TAB10[7],
    "JPEG 2000": _TAB10[5],
    "WebP": _TAB10[2],
    "JPEG XL": _TAB10[4],
    "L3C (paper)": _TAB10[9],
}
_FREE_COLORS = tuple(c for c in _TAB10 if c not in FIXED_COLORS.values())
_VARIANT_SUFFIXES = (" (actual)", " (theoretical)")


@dataclasses.dataclass
class Chart:
  """The data behind a written figure.

  Attributes:
    path: the PNG written.
    title: figure title.
    labels: series (bars, lines) or panel titles, in drawing order.
    colors: label -> matplotlib colour (bars and lines).
    values: label -> the plotted values (NaN where nothing is drawn).
    xlim, ylim: axis limits of the main axes (None for image panels).
  """
  path: str
  title: str
  labels: List[str]
  colors: Dict[str, str] = dataclasses.field(default_factory=dict)
  values: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  xlim: Optional[Tuple[float, float]] = None
  ylim: Optional[Tuple[float, float]] = None


def method_color(label: str) -> str:
  """The colour of a method in every chart ('X (actual)' and 'X (theoretical)' share X's hue)."""
  for suffix in _VARIANT_SUFFIXES:
    if label.endswith(suffix):
      label = label[:-len(suffix)]
  if label in FIXED_COLORS:
    return FIXED_COLORS[label]
  # crc32, not hash(): the same name must get the same colour in every process.
  return _FREE_COLORS[zlib.crc32(label.encode("utf-8")) % len(_FREE_COLORS)]


def _as_float(values: Sequence[Optional[float]]) -> np.ndarray:
  return np.array([np.nan if v is None else float(v) for v in values], np.float64)


def _save(fig, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)


def bar_limits(values: np.ndarray) -> Tuple[float, float]:
  """y range of a bar chart that shows the differences between methods, not their common part.

  The axis starts below the smallest bar by half the spread of the bars (never below 0), so
  bars of 3.10 and 3.17 bpsp differ visibly; the values are written on the bars.

  Args:
    values: the finite bar heights, any shape.
  Returns:
    (y_min, y_max).
  """
  finite = values[np.isfinite(values)]
  if finite.size == 0:
    return 0.0, 1.0
  lo, hi = float(finite.min()), float(finite.max())
  spread = max(hi - lo, 0.05 * abs(hi), 1e-3)
  return max(0.0, lo - 0.5 * spread), hi + 0.25 * spread


def bar_chart(categories: Sequence[str], series: Mapping[str, Sequence[Optional[float]]],
              path: str, title: str = "", ylabel: str = "bpsp") -> Chart:
  """Grouped bar chart: one group per category, one bar per series, the value on each bar.

  Args:
    categories: group labels along x (e.g. sets), G of them.
    series: method label -> G values (None: no bar), coloured by `method_color`.
    path: output PNG.
    title: figure title.
    ylabel: y-axis label.
  Returns:
    Chart with the values [G] per label, the colours and the y limits (`bar_limits`).
  """
  labels = list(series)
  values = {k: _as_float(series[k]) for k in labels}
  for k, v in values.items():
    if v.shape != (len(categories),):
      raise ValueError(f"series {k!r} has {v.size} values, {len(categories)} categories")
  colors = {k: method_color(k) for k in labels}
  all_values = np.concatenate([v for v in values.values()]) if values else np.zeros(0)
  ylim = bar_limits(all_values)
  width = 0.8 / max(1, len(labels))
  fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + len(categories) * len(labels) * 0.55), 4.5))
  x = np.arange(len(categories))
  for i, k in enumerate(labels):
    hatch = "//" if k.endswith(" (theoretical)") else None
    bars = ax.bar(x + (i - (len(labels) - 1) / 2) * width, values[k], width, label=k,
                  color=colors[k], hatch=hatch, edgecolor="white" if hatch else None)
    ax.bar_label(bars, labels=["" if not np.isfinite(v) else f"{v:.3f}" for v in values[k]],
                 fontsize=7, rotation=90, padding=2)
  ax.set_xticks(x, list(categories))
  ax.set_ylim(*ylim)
  ax.set_ylabel(ylabel + " (axis does not start at 0)" if ylim[0] > 0 else ylabel)
  ax.set_title(title)
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=8, ncols=min(4, max(1, len(labels))), loc="upper center",
            bbox_to_anchor=(0.5, -0.08))
  _save(fig, path)
  return Chart(path=path, title=title, labels=labels, colors=colors, values=values, ylim=ylim)


def line_chart(xs: Sequence[float], series: Mapping[str, Sequence[Optional[float]]], path: str,
               title: str = "", xlabel: str = "step", ylabel: str = "bpsp") -> Chart:
  """Lines over a shared x axis (e.g. training curves); None values are skipped, not zero.

  Args:
    xs: N x values, ascending.
    series: label -> N y values (None where a series has no point).
    path: output PNG.
    title, xlabel, ylabel: texts.
  Returns:
    Chart with the y values [N] per label, colours and axis limits.
  Raises:
    ValueError: a series does not have N values, or there is no finite point.
  """
  labels = list(series)
  x = _as_float(xs)
  values = {k: _as_float(series[k]) for k in labels}
  for k, v in values.items():
    if v.shape != x.shape:
      raise ValueError(f"series {k!r} has {v.size} values, {x.size} x values")
  if not any(np.isfinite(v).any() for v in values.values()):
    raise ValueError("a line chart needs at least one finite point")
  colors = {k: _TAB10[i % len(_TAB10)] for i, k in enumerate(labels)}
  fig, ax = plt.subplots(figsize=(8, 4.8))
  for k in labels:
    ok = np.isfinite(values[k])
    # Each series is drawn through its own points: train and validation are logged at
    # different steps, and a gap in the list is not a gap in the curve.
    ax.plot(x[ok], values[k][ok], label=k, color=colors[k], marker="o" if ok.sum() <= 60 else None,
            markersize=3)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  xlim, ylim = tuple(ax.get_xlim()), tuple(ax.get_ylim())
  _save(fig, path)
  return Chart(path=path, title=title, labels=labels, colors=colors, values=values, xlim=xlim,
               ylim=ylim)


def heat_maps(image: np.ndarray, maps: Sequence[np.ndarray], titles: Sequence[str],
              colorbar_labels: Sequence[str], vmax: Sequence[float], path: str,
              title: str = "", cmap: str = "inferno") -> Chart:
  """The image beside one heat map per entry of `maps`, each with its own colour bar.

  Args:
    image: uint8 [H, W, 3], the first panel.
    maps: M arrays [H, W] (e.g. bits per position), drawn with `cmap` from 0 to vmax[m].
    titles: M + 1 panel titles (the image's first).
    colorbar_labels: M colour-bar labels (units).
    vmax: M colour-range tops.
    path: output PNG.
    title: figure title.
    cmap: matplotlib colour map name.
  Returns:
    Chart with labels = panel titles, values = the maps, ylim None.
  """
  if not len(maps) == len(colorbar_labels) == len(vmax) == len(titles) - 1:
    raise ValueError("need one title per panel and one colour-bar label and vmax per map")
  fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3.6 * (len(maps) + 1), 4.2),
                           squeeze=False)
  axes = axes[0]
  axes[0].imshow(image)
  for ax, m, label, top in zip(axes[1:], maps, colorbar_labels, vmax):
    im = ax.imshow(m, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
    fig.colorbar(im, ax=ax, orientation="horizontal", label=label, fraction=0.05, pad=0.04)
  for ax, t in zip(axes, titles):
    ax.set_title(t, fontsize=9)
    ax.set_axis_off()
  fig.suptitle(title, fontsize=10)
  _save(fig, path)
  return Chart(path=path, title=title, labels=list(titles),
               values={t: np.asarray(m) for t, m in zip(titles[1:], maps)})


def image_grid(cells: Sequence[Sequence[Optional[np.ndarray]]], path: str,
               column_titles: Optional[Sequence[str]] = None,
               row_titles: Optional[Sequence[str]] = None, title: str = "") -> Chart:
  """Images in rows and columns with titles (None leaves a cell empty).

  Args:
    cells: R rows of C uint8 [h, w, 3] images (or None).
    path: output PNG.
    column_titles: C strings, or None.
    row_titles: R strings, or None.
    title: figure title.
  Returns:
    Chart with labels = column titles.
  """
  num_rows, num_cols = len(cells), max(len(r) for r in cells)
  # Constrained layout keeps the figure title clear of multi-line column titles.
  fig, axes = plt.subplots(num_rows, num_cols, figsize=(3.2 * num_cols, 3.4 * num_rows),
                           squeeze=False, layout="constrained")
  for i in range(num_rows):
    for j in range(num_cols):
      ax = axes[i, j]
      cell = cells[i][j] if j < len(cells[i]) else None
      if cell is not None:
        ax.imshow(cell)
      ax.set_xticks([])
      ax.set_yticks([])
      if cell is None:
        ax.set_frame_on(False)
      if i == 0 and column_titles:
        ax.set_title(column_titles[j], fontsize=8)
      if j == 0 and row_titles:
        ax.set_ylabel(row_titles[i])
  fig.suptitle(title, fontsize=10)
  _save(fig, path)
  return Chart(path=path, title=title, labels=list(column_titles or []))


# Array helpers for the figures' inputs (numpy only).


def upsample_nearest(values: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upsampling of the first two axes by an integer factor.

  Args:
    values: [H, W, ...] array.
    factor: integer factor.
  Returns:
    [H * factor, W * factor, ...] array.
  """
  values = np.asarray(values)
  return np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)


def to_uint8_image(pixels: np.ndarray) -> np.ndarray:
  """Pixels (float or int, 0..255) [H, W, 3] -> uint8, rounded and clipped."""
  return np.clip(np.round(np.asarray(pixels, np.float64)), 0, 255).astype(np.uint8)
