"""Figure helpers (numpy + Pillow only): colour maps, colour bars and labelled image grids.

Used by experiments/sample.py (sample grids) and experiments/bitcost.py (bit-cost heat maps).
Images are uint8 numpy arrays [H, W, 3]; figures are returned as Pillow RGB images.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)

# Key colours (position in [0, 1], RGB) of perceptually ordered maps; linearly interpolated to 256
# entries. These are coarse approximations of matplotlib's viridis / inferno, sampled at 9 points.
_ANCHORS = {
    "viridis": ((0.0, (68, 1, 84)), (0.125, (71, 44, 122)), (0.25, (59, 81, 139)),
                (0.375, (44, 113, 142)), (0.5, (33, 144, 141)), (0.625, (39, 173, 129)),
                (0.75, (92, 200, 99)), (0.875, (170, 220, 50)), (1.0, (253, 231, 37))),
    "inferno": ((0.0, (0, 0, 4)), (0.125, (31, 12, 72)), (0.25, (85, 15, 109)),
                (0.375, (136, 34, 106)), (0.5, (186, 54, 85)), (0.625, (227, 89, 51)),
                (0.75, (249, 140, 10)), (0.875, (249, 201, 50)), (1.0, (252, 255, 164))),
    "gray": ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
}
COLORMAPS = tuple(_ANCHORS)


def colormap_lut(name: str = "inferno") -> np.ndarray:
  """The [256, 3] uint8 lookup table of a colour map (one of COLORMAPS)."""
  if name not in _ANCHORS:
    raise ValueError(f"unknown colour map {name!r} (known: {', '.join(COLORMAPS)})")
  pos = np.array([p for p, _ in _ANCHORS[name]], np.float64)
  rgb = np.array([c for _, c in _ANCHORS[name]], np.float64)
  t = np.linspace(0.0, 1.0, 256)
  lut = np.stack([np.interp(t, pos, rgb[:, i]) for i in range(3)], axis=-1)
  return np.round(lut).astype(np.uint8)


def apply_colormap(values: np.ndarray, vmin: float, vmax: float,
                   name: str = "inferno") -> np.ndarray:
  """Colours a 2-D map: values [H, W] -> uint8 [H, W, 3]; clipped to [vmin, vmax]."""
  values = np.asarray(values, np.float64)
  span = max(float(vmax) - float(vmin), 1e-12)
  t = np.clip((values - vmin) / span, 0.0, 1.0)
  t = np.nan_to_num(t, nan=0.0)
  return colormap_lut(name)[np.round(t * 255).astype(np.int64)]


def upsample_nearest(values: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upsampling of the first two axes by an integer factor."""
  values = np.asarray(values)
  return np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)


def to_uint8_image(pixels: np.ndarray) -> np.ndarray:
  """Pixels (float or int, 0..255) [H, W, 3] -> uint8, rounded and clipped."""
  return np.clip(np.round(np.asarray(pixels, np.float64)), 0, 255).astype(np.uint8)


def font(size: int = 13):
  """Pillow's default font at `size` (falls back to the fixed bitmap font without FreeType)."""
  try:
    return ImageFont.load_default(size=size)
  except TypeError:
    return ImageFont.load_default()


def text_size(text: str, fnt, spacing: int = 2) -> Tuple[int, int]:
  """(width, height) in pixels of (possibly multi-line) text."""
  draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=fnt, spacing=spacing)
  return right - min(left, 0), bottom - min(top, 0)


def _nice_ticks(vmin: float, vmax: float, max_ticks: int = 5) -> np.ndarray:
  span = vmax - vmin
  if span <= 0:
    return np.array([vmin])
  raw = span / max(max_ticks - 1, 1)
  mag = 10.0 ** np.floor(np.log10(raw))
  step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
  first = np.ceil(vmin / step - 1e-9) * step
  return np.arange(first, vmax + step * 1e-6, step)


def _tick_label(v: float) -> str:
  return f"{v:.3g}" if abs(v) >= 1e-9 else "0"


def colorbar(width: int, vmin: float, vmax: float, name: str = "inferno", label: str = "",
             bar_height: int = 12, font_size: int = 11) -> np.ndarray:
  """A horizontal colour bar with ticks and tick labels (and an optional label below).

  Args:
    width: total width in pixels (the bar spans it minus a small margin for the end labels).
    vmin, vmax: value range of the bar.
    name: colour map.
    label: text under the tick labels (e.g. the unit; may contain newlines).
  Returns:
    uint8 [h, w, 3] image, w = width or wider if the label needs it.
  """
  fnt = font(font_size)
  margin = 10
  label_w, label_h = text_size(label, fnt) if label else (0, 0)
  width = max(width, label_w + 4)  # never cut the label
  bar_w = max(width - 2 * margin, 2)
  _, th = text_size("0.9", fnt)
  lh = label_h + 3 if label else 0
  height = bar_height + 4 + th + 4 + lh
  img = Image.new("RGB", (width, height), BACKGROUND)
  ramp = colormap_lut(name)[np.round(np.linspace(0, 255, bar_w)).astype(np.int64)]
  img.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (margin, 0))
  draw = ImageDraw.Draw(img)
  draw.rectangle((margin - 1, 0, margin + bar_w, bar_height - 1), outline=TEXT_COLOR)
  span = max(vmax - vmin, 1e-12)
  for v in _nice_ticks(vmin, vmax):
    xpos = margin + int(round((v - vmin) / span * (bar_w - 1)))
    draw.line((xpos, bar_height, xpos, bar_height + 3), fill=TEXT_COLOR)
    text = _tick_label(float(v))
    tw, _ = text_size(text, fnt)
    tx = min(max(xpos - tw // 2, 0), width - tw)
    draw.text((tx, bar_height + 4), text, fill=TEXT_COLOR, font=fnt)
  if label:
    draw.multiline_text(((width - label_w) // 2, bar_height + 4 + th + 4), label,
                        fill=TEXT_COLOR, font=fnt, spacing=2, align="center")
  return np.asarray(img)


def stack_vertical(parts: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
  """Stacks uint8 images top to bottom, centred, padding with the background colour."""
  width = max(p.shape[1] for p in parts)
  height = sum(p.shape[0] for p in parts) + gap * (len(parts) - 1)
  out = np.empty((height, width, 3), np.uint8)
  out[...] = BACKGROUND
  y = 0
  for p in parts:
    x = (width - p.shape[1]) // 2
    out[y:y + p.shape[0], x:x + p.shape[1]] = p
    y += p.shape[0] + gap
  return out


def labeled_grid(cells: Sequence[Sequence[Optional[np.ndarray]]],
                 column_titles: Optional[Sequence[str]] = None,
                 row_titles: Optional[Sequence[str]] = None,
                 title: Optional[str] = None, gap: int = 6, font_size: int = 13) -> Image.Image:
  """Lays out images in a grid with column titles above, row titles left and a figure title.

  Cells may differ in size: each column is as wide as its widest cell and each row as tall as its
  tallest; cells are centred horizontally and top aligned. None leaves a cell empty. Titles may
  contain newlines.

  Args:
    cells: rows of uint8 [h, w, 3] images (or None).
    column_titles: one string per column, or None.
    row_titles: one string per row, or None.
    title: text above everything, or None.
  Returns:
    RGB Pillow image.
  """
  num_rows = len(cells)
  num_cols = max(len(r) for r in cells)
  fnt = font(font_size)
  col_w = [0] * num_cols
  row_h = [0] * num_rows
  for i, row in enumerate(cells):
    for j, cell in enumerate(row):
      if cell is not None:
        col_w[j] = max(col_w[j], cell.shape[1])
        row_h[i] = max(row_h[i], cell.shape[0])
  if column_titles:
    for j, t in enumerate(column_titles):
      col_w[j] = max(col_w[j], text_size(t, fnt)[0])
  col_title_h = max((text_size(t, fnt)[1] for t in column_titles), default=0) + gap \
      if column_titles else 0
  row_title_w = max((text_size(t, fnt)[0] for t in row_titles), default=0) + gap \
      if row_titles else 0
  title_h = text_size(title, fnt)[1] + 2 * gap if title else 0
  width = gap + row_title_w + sum(col_w) + gap * num_cols
  if title:
    width = max(width, text_size(title, fnt)[0] + 2 * gap)
  height = gap + title_h + col_title_h + sum(row_h) + gap * num_rows
  img = Image.new("RGB", (width, height), BACKGROUND)
  draw = ImageDraw.Draw(img)
  if title:
    draw.multiline_text((gap, gap), title, fill=TEXT_COLOR, font=fnt, spacing=2)
  x0 = gap + row_title_w
  y0 = gap + title_h
  col_x = np.cumsum([x0] + [w + gap for w in col_w])[:-1]
  if column_titles:
    for j, t in enumerate(column_titles):
      tw, _ = text_size(t, fnt)
      draw.multiline_text((int(col_x[j]) + (col_w[j] - tw) // 2, y0), t, fill=TEXT_COLOR,
                          font=fnt, spacing=2, align="center")
  y = y0 + col_title_h
  for i, row in enumerate(cells):
    if row_titles:
      _, th = text_size(row_titles[i], fnt)
      draw.multiline_text((gap, y + (row_h[i] - th) // 2), row_titles[i], fill=TEXT_COLOR,
                          font=fnt, spacing=2)
    for j, cell in enumerate(row):
      if cell is not None:
        img.paste(Image.fromarray(np.ascontiguousarray(cell, np.uint8)),
                  (int(col_x[j]) + (col_w[j] - cell.shape[1]) // 2, y))
    y += row_h[i] + gap
  return img


def load_rgb(path: str) -> np.ndarray:
  """Reads an image file as uint8 [H, W, 3] (gray replicated, alpha dropped)."""
  with Image.open(path) as img:
    return np.asarray(img.convert("RGB"), np.uint8)


def center_crop(pixels: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
  """The central size x size crop of [H, W, ...] (size 0: whole image), trimmed to a multiple.

  A side shorter than `size` is kept whole. Both sides are then cut down (centred) to a multiple
  of `multiple` (e.g. the model's 2^S), which must leave at least one multiple.

  Raises:
    ValueError: if a side is shorter than `multiple`.
  """
  h, w = pixels.shape[:2]
  th = min(h, size) if size > 0 else h
  tw = min(w, size) if size > 0 else w
  th, tw = th // multiple * multiple, tw // multiple * multiple
  if th == 0 or tw == 0:
    raise ValueError(f"image of {h}x{w} is smaller than {multiple} pixels")
  top, left = (h - th) // 2, (w - tw) // 2
  return pixels[top:top + th, left:left + tw]
