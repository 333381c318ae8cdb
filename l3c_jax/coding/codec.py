"""The L3C lossless image codec: ImageData <-> `.l3c` bytes (docs/l3c_reference.md#coding-order).

Coding order, per coded plane group and tile: the steps of the model family's coding plan
(`models.plan`; e.g. L3C: z^(S) with the uniform prior over its L levels, then z^(S-1), ..., z^(1)
from the heads of D^(S), ..., D^(2), then the pixels from D^(1)'s head; the shipped interlaced
pyramid: x^(3) uniformly over 256 values, then phases 1-3 of x^(2), x^(1) and x). Each step is
one range-coded substream (latents and the uniform top: (position, channel) raster order), or
one per coded channel for pixels: R, then G | R, then B | R, G (gray planes: the one channel).
The encoder takes every step's symbols from the image (`Family.targets`: hard quantization) and
then runs the decoder's loop (`_TileCoder._code`): the same jitted network functions on the
same symbols' values, and the same integer formulas (`coding.exact_tables`) on the same inputs,
so both sides code every symbol with the same integer interval. The decoder builds whole tables
(chunked, channels pipelined); the encoder, which knows the symbols, computes only each symbol's
interval and codes it with a 3-entry table that gives the range coder the same interval, hence
the same bytes (`tables.interval_tables`). Tiles are independent and coded in threads. The
training loss iterates the same plan (`losses`), so what training optimizes is what the file
costs.

Images and modes (see `data.images`): every image is split into plane groups ("components"):
  RGB   one RGB component.
  L, 1  one gray component: the plane is replicated to RGB for the network (latents are
        coded as for RGB) and only the R channel is coded; G and B are never coded.
  RGBA  RGB component + alpha; LA: gray component + alpha. Alpha is a constant component
        (its value in the header, zero bits) when all pixels share one alpha value (e.g.
        fully opaque), else a gray component.
  P     palette + transparency in the header. If every used index is the first palette
        entry of its colour, the RGB rendering is coded as an RGB component and indices are
        recovered by colour lookup; otherwise the index plane is coded as a gray component.
Each component is cut into tiles of at most tile_size^2 pixels (tile_size a multiple of 2^S),
coded independently; each tile is edge-padded at the bottom/right to a multiple of 2^S. The
padded pixels are coded too (cheap, being copies of their neighbours) and cropped on decode.
The header holds a CRC32 of each tile's pixels, checked as soon as the tile is decoded, and a
CRC32 of the whole content (mode, palette, transparency, metadata, pixels), checked before
anything is returned.

Methods (`encode(method=...)`): besides the model, a file can hold one embedded PNG or WebP
stream of the image (`coding.embedded`); 'auto' keeps the smallest, so no file is larger than
the image's PNG at zlib level 9 plus the container, and few-colour images, on which a model
trained on photos does poorly, never go through the model.
"""

import concurrent.futures
import contextlib
import copy
import dataclasses
import functools
import math
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax import losses
from l3c_jax.coding import bitstream
from l3c_jax.coding import embedded
from l3c_jax.coding import entropy
from l3c_jax.coding import exact_tables
from l3c_jax.coding import tables
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images
from l3c_jax.models import families
from l3c_jax.models import plan as plan_lib

DEFAULT_TILE_SIZE = 1024
# Smallest tile side: every tile costs a fixed number of network calls, so tiny tiles would
# make decoding work per file byte large (a forged file of 16-pixel tiles decoded ~0.4 ms per
# byte). Files with smaller tiles are refused unless the image is a single tile.
MIN_TILE_SIZE = 32
METHODS = ("auto", "model", "png", "webp")
# RGB(A) images with at most this many colours (and 16 pixels per colour), palette and bilevel
# images are "few-colour": `auto` codes them with the embedded classical streams only (the model, trained on
# photos, costs several times more on them; docs/measurements.md#few-colour-images).
FEW_COLORS = 256
# The encoder codes HEAD steps from the symbols' intervals (`_Encoding.head_symbols`), which
# gives the same bytes as whole tables; False builds whole tables like the decoder (for
# experiments/check_portable.py's per-stage digests, and tests comparing the two).
ENCODE_FROM_INTERVALS = True
# Pixel steps are coded in blocks of this many rows (format version 4): each channel's substream
# holds, block after block, the window entries of the block's rows, then the escaped rows'
# symbols again with their escapes' tables (`exact_tables` "Window coding"). The decoder reads a
# block's channels pipelined (`_Decoding.pixel_symbols`). Part of the format: changing it changes
# the bytes (tests may lower it on both sides at once).
BLOCK_ROWS = 4096
# Tiles coded at once (threads). Tiles are independent, and while one waits on its network (which
# keeps about one core busy) or on the range coder, another builds tables; more than two did not
# pay on the 2-core machine, and each tile in flight holds its activations and tables.
MAX_TILE_THREADS = 2

ProgressFn = Callable[[int, int], None]


@dataclasses.dataclass
class CodingStats:
  """What one encode or decode did.

  Attributes:
    num_subpixels: H * W * channels of the image (the bpsp denominator).
    file_bits: size of the whole file in bits.
    header_bits: bits of the container (everything but the substreams).
    actual_bits: bits written per group of the coding plan, in coding order (e.g. 'z3', 'z2',
      'z1', 'x' for L3C; 'x3', 'x2', 'x1', 'x' for the RGB pyramids), summed over tiles and
      components.
    theory_bits: the model's -log2 p of the same symbols per group (encoder with
      estimate=True only; the top group's is the uniform prior's n * log2 L).
    times_s: wall seconds per stage: 'network' (encoders + per-scale decoders), 'tables'
      (waiting for integer tables or intervals), 'coder' (range coding), 'estimate', 'png' /
      'webp' (embedded streams), 'total'; the stages of tiles coded in threads add up to more
      than 'total'.
    method: the file's bitstream.METHOD_* (for an encode: the one chosen).
    counts: events per kind, summed over tiles: 'escapes' (pixel symbols outside their window
      table, coded a second time with their escape's table; format version 4).
  """
  num_subpixels: int = 0
  file_bits: int = 0
  header_bits: int = 0
  actual_bits: Dict[str, float] = dataclasses.field(default_factory=dict)
  theory_bits: Dict[str, float] = dataclasses.field(default_factory=dict)
  times_s: Dict[str, float] = dataclasses.field(default_factory=dict)
  method: int = bitstream.METHOD_MODEL
  counts: Dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def bpsp(self) -> float:
    """Actual bits per sub-pixel of the whole file."""
    return self.file_bits / self.num_subpixels

  @property
  def theory_bpsp(self) -> float:
    """The model's estimate in bits per sub-pixel (nan without estimates)."""
    if not self.theory_bits:
      return float("nan")
    return sum(self.theory_bits.values()) / self.num_subpixels


def _accumulate(table: Dict[str, float], key: str, value: float):
  table[key] = table.get(key, 0.0) + value


class _Clock:
  """Accumulates wall time per stage into a dict."""

  def __init__(self, times: Dict[str, float]):
    self.times = times

  @contextlib.contextmanager
  def __call__(self, stage: str):
    t0 = time.perf_counter()
    try:
      yield
    finally:
      _accumulate(self.times, stage, time.perf_counter() - t0)

  def iterate(self, it: Iterator, stage: str) -> Iterator:
    """Yields the items of `it`, timing each next() under `stage`."""
    while True:
      with self(stage):
        item = next(it, None)
      if item is None:
        return
      yield item


def _merge_stats(into: CodingStats, part: CodingStats) -> None:
  """Adds a tile's bits and stage times to the image's stats (stage times of tiles coded at
  once add up to more than the wall time)."""
  for table, other in ((into.actual_bits, part.actual_bits),
                       (into.theory_bits, part.theory_bits), (into.times_s, part.times_s),
                       (into.counts, part.counts)):
    for key, value in other.items():
      _accumulate(table, key, value)


class _Progress:
  """Counts finished work units (pixels of tiles, apportioned over each tile's coding steps)
  and reports the running total to a `progress(done, total)` callable, under a lock because
  tiles run in threads. The last call has done == total."""

  def __init__(self, fn: Optional[ProgressFn], total: int):
    self.fn = fn
    self.total = total
    self.done = 0
    self.lock = threading.Lock()
    if fn is not None:
      fn(0, total)

  def tile(self, pixels: int, num_steps: int) -> Callable[[int], None]:
    """For one tile of `pixels` pixels: a callable `steps_done -> None` (1..num_steps)."""
    reported = [0]

    def step(steps_done: int):
      units = pixels * steps_done // num_steps
      with self.lock:
        self.done += units - reported[0]
        reported[0] = units
        if self.fn is not None:
          self.fn(self.done, self.total)

    return step


def _map_tiles(fn: Callable, jobs: Sequence) -> List:
  """[fn(job) for job in jobs], up to MAX_TILE_THREADS at once, in order; an exception of a
  job is raised here (after the jobs already running finish)."""
  if len(jobs) <= 1 or MAX_TILE_THREADS <= 1:
    return [fn(job) for job in jobs]
  with concurrent.futures.ThreadPoolExecutor(min(MAX_TILE_THREADS, len(jobs))) as pool:
    futures = [pool.submit(fn, job) for job in jobs]
    try:
      return [f.result() for f in futures]
    except BaseException:
      for f in futures:
        f.cancel()
      raise


# ---------------------------------------------------------------------------------------------
# One tile of one component: the family's coding plan, step by step.


# Compiled code is cached per (model config, padded tile shape, coded channels), and every
# shape's executables stay mapped in memory until JAX's caches are cleared: ~800 memory maps per
# new tile shape and side
# (measured with the S=4 default model: 64x80 .. 96x104 images, ~1,600 maps per image encoded
# and decoded). Linux allows a process 65,530 maps (vm.max_map_count), so one process coding ~40
# differently sized photos (an evaluation set, `l3c-jax compress *.png`) died in LLVM ("Cannot
# allocate memory", then a segfault). Past MAX_COMPILED_SHAPES distinct shapes the caches are
# cleared before the next image (freeing the maps); a shape seen again is recompiled, or loaded
# from the persistent compilation cache (l3c_jax/compile_cache.py).
MAX_COMPILED_SHAPES = 12
_compiled_shapes: set = set()
_compiled_shapes_lock = threading.Lock()


def _bound_compiled_shapes(config, side: str, kinds: Sequence[int], jobs) -> None:
  """Records the shapes an image's tiles compile for (padded height and width, coded channels
  of the tile's component: what the jitted steps are specialized on); clears JAX's caches first
  if they would pass MAX_COMPILED_SHAPES (called before any tile of the image runs).

  Args:
    config: the model config; side: "encode" or "decode"; kinds: each component's kind;
    jobs: `_tile_jobs` tuples (component index, y, x, tile_h, tile_w).
  """
  f = config.padding_factor
  keys = {(side, config, images.padded_size(th, f), images.padded_size(tw, f),
           _component_channels(kinds[i])) for i, _, _, th, tw in jobs}
  with _compiled_shapes_lock:
    new = keys - _compiled_shapes
    if new and len(_compiled_shapes) + len(new) > MAX_COMPILED_SHAPES:
      jax.clear_caches()
      _compiled_shapes.clear()
    _compiled_shapes.update(keys)


def tile_grid(height: int, width: int, tile_size: int) -> List[Tuple[int, int, int, int]]:
  """Row-major tiles (y0, x0, tile_h, tile_w) of at most tile_size x tile_size covering H x W."""
  return [(y, x, min(tile_size, height - y), min(tile_size, width - x))
          for y in range(0, height, tile_size) for x in range(0, width, tile_size)]


def _coded_channels(config, step: plan_lib.Step, num_channels: int) -> int:
  """Channels of a step's symbols that are coded: all C_q of a latent, the image's channels
  (1 for gray, 3 for RGB) of a pixel array."""
  return config.latent_channels if step.alphabet == plan_lib.LATENT else num_channels


def _streams_per_tile(config, num_channels: int) -> int:
  """Substreams of one tile of a component: one per UNIFORM or LATENT step, one per coded
  channel of a PIXEL step."""
  return sum(1 if step.prior == plan_lib.UNIFORM or step.alphabet == plan_lib.LATENT
             else num_channels for step in families.plan(config))


def _top_symbols(config, height_padded: int, width_padded: int, num_channels: int) -> int:
  """Symbols of the uniformly coded first step of one padded tile."""
  top = families.plan(config)[0]
  return ((height_padded >> top.scale) * (width_padded >> top.scale)
          * _coded_channels(config, top, num_channels))


def _network_input(plane: np.ndarray) -> jax.Array:
  """uint8 [h, w, C] (C = 1 or 3) -> float32 [1, h, w, 3]; gray is replicated to RGB."""
  if plane.shape[2] == 1:
    plane = np.repeat(plane, 3, axis=2)
  return jnp.asarray(plane[None].astype(np.float32))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _head_rows(head: jax.Array, coupled: bool, chunk: int) -> jax.Array:
  """Snapped head params [1, h, w, P C K] -> rows [n_pad, P C K] in the integer units of
  `coding.exact_tables` (`exact_tables.head_units`), zero-padded to a multiple of chunk: one
  jitted call per step instead of two."""
  return tables.to_rows(exact_tables.head_units(head, coupled), chunk)


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def _estimate_bits(config, step: plan_lib.Step, head, values, num_channels: int):
  """The model's -log2 p of a step's coded channels (what the coder should write)."""
  return jnp.sum(losses.step_bits(config, step, head, values)[..., :num_channels])


def _block_rows(n: int) -> int:
  """Rows per block of a pixel step of n rows: BLOCK_ROWS, or one block of all n rows when
  n <= BLOCK_ROWS (then the decoder's compiled chunk shape, `tables.chunk_rows_for`, is >= n)."""
  return min(tables.chunk_rows_for(n), BLOCK_ROWS)


class _Encoding:
  """The encoder's side of a tile: the symbols are known, substreams are written.

  HEAD steps are coded from each symbol's interval in its table (`exact_tables.*_intervals`,
  a few table edges per symbol instead of A + 1, in one jitted call per step) with 3-entry
  tables that the range coder turns into the same bytes as the tables the decoder builds
  (`tables.interval_tables`).
  """

  def __init__(self, coder: "_TileCoder", targets):
    self.coder = coder
    self.targets = targets
    self.streams: List[bytes] = []

  def symbols(self, step: plan_lib.Step, table_iters, shape) -> jax.Array:
    """Writes the step's symbols with the tables; returns them [1, h, w, C'] int32."""
    symbols = self.targets[step.name][0]
    flat = np.asarray(symbols)[0, ..., :shape[-1]].reshape(-1, shape[-1])
    for table_iter, channel in table_iters(flat):
      column = flat.reshape(-1) if channel is None else flat[:, channel]
      per_row = flat.shape[1] if channel is None else 1
      self.streams.append(self.coder.write(step.group, column, table_iter, per_row))
    return symbols

  def head_symbols(self, step: plan_lib.Step, head: jax.Array, num_channels: int) -> jax.Array:
    """Writes a latent HEAD step's symbols (one substream, (position, channel) order) from
    their intervals; returns them [1, h, w, C_q] int32."""
    symbols = self.targets[step.name][0]
    coder = self.coder
    with coder.clock("tables"):
      left, freq = exact_tables.latent_intervals(head, symbols, coder.config)
      coded, table = tables.interval_tables(left, freq, coder.config.num_levels)
    self.streams.append(coder.write(step.group, coded, [(0, table)], 1))
    return symbols

  def pixel_symbols(self, step: plan_lib.Step, head: jax.Array, num_channels: int
                    ) -> jax.Array:
    """Writes a pixel HEAD step's symbols, one substream per channel, with window coding
    (format version 4: per block, the rows' window entries, then the escaped rows' symbols with
    their escapes' tables); returns them [1, h, w, 3] int32."""
    symbols = self.targets[step.name][0]
    coder = self.coder
    width = exact_tables.WINDOW_BINS
    with coder.clock("tables"):
      left, freq, offsets, rows = exact_tables.pixel_window_intervals(
          head, symbols, num_channels, coder.config)
      flat = np.asarray(symbols).reshape(-1, 3)
    n = flat.shape[0]
    for c in range(num_channels):
      with coder.clock("tables"):
        coded, table = tables.interval_tables(left[:, c], freq[:, c], width + 2)
        s, t = flat[:, c], offsets[:, c]
        # The entry each symbol codes as is clip(s - t, 0, W + 1); the decoder's rule tells
        # which entries are escapes.
        escaped = np.flatnonzero(
            exact_tables.window_symbols(np.clip(s - t, 0, width + 1), t)[1])
        if escaped.size:
          r = exact_tables.escape_frequencies(exact_tables.full_rows(rows[c], escaped),
                                              t[escaped], s[escaped] > t[escaped])
          e = np.arange(escaped.size)
          sym = s[escaped]
          r_left = np.cumsum(r, axis=1)[e, sym] - r[e, sym]
          r_coded, r_table = tables.interval_tables(r_left, r[e, sym], 256)
          # Stream order: block by block, the block's entries, then its escapes (row order).
          block = _block_rows(n)
          keys = np.concatenate([2 * (np.arange(n) // block), 2 * (escaped // block) + 1])
          order = np.argsort(keys, kind="stable")
          coded = np.concatenate([coded, r_coded])[order]
          table = np.concatenate([table, r_table])[order]
        _accumulate(coder.stats.counts, "escapes", escaped.size)
      self.streams.append(coder.write(step.group, coded, [(0, table)], 1))
    return symbols


class _Decoding:
  """The decoder's side of a tile: substreams are read, the symbols come out.

  windowed: pixel steps are window-coded (format version >= 4); else they were coded with whole
  tables (format versions 2 and 3), and are read with whole tables.
  """

  def __init__(self, coder: "_TileCoder", streams: Iterator[bytes], windowed: bool = True):
    self.coder = coder
    self.streams = streams
    self.windowed = windowed

  def symbols(self, step: plan_lib.Step, table_iters, shape) -> jax.Array:
    """Reads the step's symbols with the tables -> [1, h, w, C'] int32."""
    n, c = math.prod(shape[:-1]), shape[-1]
    flat = np.zeros((n, c), np.int32)
    for table_iter, channel in table_iters(flat):
      if channel is None:
        flat[:] = self.coder.read(step.group, next(self.streams), table_iter, n * c,
                                  c).reshape(n, c)
      else:
        flat[:, channel] = self.coder.read(step.group, next(self.streams), table_iter, n, 1)
    symbols = flat.reshape((1,) + tuple(shape))
    if c == 1 and step.alphabet == plan_lib.PIXEL:
      symbols = np.repeat(symbols, 3, axis=-1)  # gray: the network sees it as RGB
    return jnp.asarray(symbols)

  def pixel_symbols(self, step: plan_lib.Step, head: jax.Array, num_channels: int
                    ) -> jax.Array:
    """Reads a pixel HEAD step's symbols, channels pipelined -> [1, h, w, 3] int32.

    Each channel is its own substream, and the tables of block i of channel c need only block i
    of channels < c. So blocks are decoded in wavefront order (R0; R1, G0; R2, G1, B0; ...) and
    the table of (c + 1, i) is dispatched as soon as (c, i) is decoded: table building (XLA
    threads) overlaps the range coder instead of waiting for a whole channel. Window tables
    (`exact_tables.pixel_window_chunk`) and, for the block's escapes, their escapes' tables
    from whole rows in NumPy (`exact_tables.full_rows`); whole tables for files of format
    versions 2 and 3 (`exact_tables.pixel_table_chunk`).
    """
    coder = self.coder
    h, w = head.shape[1], head.shape[2]
    n = h * w
    chunk = _block_rows(n)   # the format's blocks
    num_chunks = -(-n // chunk)
    with coder.clock("tables"):
      rows = _head_rows(head, True, chunk)
    decoders = []
    for _ in range(num_channels):
      data = next(self.streams)
      _accumulate(coder.stats.actual_bits, step.group, 8 * len(data))
      with coder.clock("coder"):
        decoders.append(entropy.StreamDecoder(data))
    flat = np.zeros((num_chunks * chunk, 3), np.int32)
    pending = {}
    build = exact_tables.pixel_window_chunk if self.windowed else exact_tables.pixel_table_chunk

    def dispatch(c, i):
      x_prev = np.zeros((chunk, 3), np.float32)
      x_prev[:, :c] = flat[i * chunk:(i + 1) * chunk, :c]
      pending[c, i] = build(rows, x_prev, i * chunk, c, coder.config)

    with coder.clock("tables"):
      for i in range(min(tables.PREFETCH_CHUNKS, num_chunks)):
        dispatch(0, i)
    for diagonal in range(num_chunks + num_channels - 1):
      for c in range(num_channels):
        i = diagonal - c
        if not 0 <= i < num_chunks:
          continue
        m = min(chunk, n - i * chunk)
        with coder.clock("tables"):
          if (c, i) not in pending:
            dispatch(c, i)
          job = pending.pop((c, i))
        if self.windowed:
          flat[i * chunk:i * chunk + m, c] = self._read_window_block(decoders[c], job, m)
        else:
          with coder.clock("tables"):
            table = np.asarray(job)[:m]
          with coder.clock("coder"):
            flat[i * chunk:i * chunk + m, c] = decoders[c].decode(table)
        with coder.clock("tables"):
          if c + 1 < num_channels:
            dispatch(c + 1, i)
          if c == 0 and i + tables.PREFETCH_CHUNKS < num_chunks:
            dispatch(0, i + tables.PREFETCH_CHUNKS)
    symbols = flat[:n].reshape(1, h, w, 3)
    if num_channels == 1:
      symbols = np.repeat(symbols[..., :1], 3, axis=-1)  # gray: the network sees it as RGB
    return jnp.asarray(symbols)

  def _read_window_block(self, decoder: entropy.StreamDecoder, job, m: int) -> np.ndarray:
    """One block of one channel: m window entries, then the escaped rows again -> [m] int32."""
    coder = self.coder
    table, offsets, row = job
    with coder.clock("tables"):
      table = np.asarray(table)[:m]
      offsets = np.asarray(offsets)[:m]
    with coder.clock("coder"):
      entries = decoder.decode(table)
    symbols, escaped = exact_tables.window_symbols(entries, offsets)
    escaped = np.flatnonzero(escaped)
    if escaped.size:
      with coder.clock("escapes"):
        high = entries[escaped] != 0
        r = exact_tables.escape_frequencies(exact_tables.full_rows(row, escaped),
                                            offsets[escaped], high)
      with coder.clock("coder"):
        again = decoder.decode((r - 1).astype(np.float32))
      t = offsets[escaped]
      if np.any(np.where(high, again <= t + exact_tables.WINDOW_BINS, again > t)):
        # Only bins of the escape have more than the minimal frequency; a valid file never
        # codes another.
        raise entropy.StreamError("an escaped pixel symbol outside its escape's bins")
      symbols[escaped] = again
    _accumulate(coder.stats.counts, "escapes", escaped.size)
    return symbols


class _TileCoder:
  """Codes tiles with a model: encoder and decoder run the same loop over the coding plan.

  Per step: the family's head (network) on what is already coded, integer tables from it
  (`coding.tables`), then the range coder writes (encoder) or reads (decoder) the step's symbols;
  their values enter the context of the next steps. Both sides call the same jitted functions on
  the same inputs, so they build bit-identical tables.
  """

  def __init__(self, model, stats: CodingStats, estimate: bool = False):
    self.config = model.config
    self.family = families.get(self.config)
    self.plan = self.family.plan(self.config)
    # On the device once, not at every jitted call (a no-op for jax arrays).
    self.params = jax.tree_util.tree_map(jnp.asarray, model.params)
    self.run = families.runner(self.config, self.params, jit=True)
    self.stats = stats
    self.clock = _Clock(stats.times_s)
    self.estimate = estimate
    self.on_step: Optional[Callable[[int], None]] = None

  def for_tile(self, on_step: Optional[Callable[[int], None]] = None) -> "_TileCoder":
    """A coder sharing this one's model (device parameters, compiled functions) with its own
    stats, so that tiles can be coded in threads; merge them with `_merge_stats`."""
    tile = copy.copy(self)
    tile.stats = CodingStats()
    tile.clock = _Clock(tile.stats.times_s)
    tile.on_step = on_step
    return tile

  def encode(self, plane: np.ndarray) -> List[bytes]:
    """uint8 [h, w, C] (C = 1 or 3) -> the tile's substreams."""
    padded, _ = images.pad_to_multiple(plane, self.config.padding_factor)
    with self.clock("network"):
      targets = self.family.targets(self.config, self.run, _network_input(padded))
      jax.block_until_ready(targets)
    side = _Encoding(self, targets)
    self._code(side, padded.shape[0], padded.shape[1], plane.shape[2])
    return side.streams

  def decode(self, streams: Iterator[bytes], height: int, width: int, num_channels: int,
             windowed: bool = True) -> np.ndarray:
    """Substreams of one tile -> uint8 [height, width, num_channels]; windowed: pixel steps
    are window-coded (format version >= 4, `_Decoding`)."""
    f = self.config.padding_factor
    hp, wp = images.padded_size(height, f), images.padded_size(width, f)
    x = self._code(_Decoding(self, streams, windowed), hp, wp, num_channels)
    return np.asarray(x[0, :height, :width, :num_channels]).astype(np.uint8)

  def _code(self, side, hp: int, wp: int, num_channels: int) -> jax.Array:
    """The plan, step by step, on either side -> the image x [1, hp, wp, 3] float32."""
    cfg = self.config
    ctx = {}
    for steps_done, step in enumerate(self.plan, 1):
      c = _coded_channels(cfg, step, num_channels)
      if step.prior == plan_lib.UNIFORM:
        head = None
        shape = (hp >> step.scale, wp >> step.scale, c)
        n = math.prod(shape)
        table = self._uniform_table(n, losses.alphabet_size(cfg, step))
        table_iters = lambda flat, table=table: [([(0, table)], None)]
      else:
        with self.clock("network"):
          head = self.family.predict(cfg, self.run, step, ctx)
          jax.block_until_ready(head)
        shape = head.shape[1:3] + (c,)
        table_iters = functools.partial(self._tables, step, head)
      if head is not None and step.alphabet == plan_lib.PIXEL:
        symbols = side.pixel_symbols(step, head, c)
      elif (head is not None and isinstance(side, _Encoding) and ENCODE_FROM_INTERVALS
            and self.config.num_levels >= 3):  # interval tables need >= 3 symbols
        symbols = side.head_symbols(step, head, c)
      else:
        symbols = side.symbols(step, table_iters, shape)
      values = self.family.values(cfg, step, symbols)
      if self.estimate:
        self._estimate(step, head, symbols, values, c)
      plan_lib.known(ctx, step, values)
      if self.on_step is not None:
        self.on_step(steps_done)
    return self.family.image(cfg, ctx)

  def _tables(self, step: plan_lib.Step, head, flat: np.ndarray):
    """[(table iterator, None)]: a latent HEAD step's tables, its C_q channels in one substream
    (pixel steps are window-coded: `pixel_symbols`)."""
    n = head.shape[1] * head.shape[2]
    with self.clock("tables"):
      rows = _head_rows(head, False, tables.latent_chunk_positions(n, self.config))
    return [(exact_tables.latent_tables(rows, n, self.config), None)]

  def _uniform_table(self, n: int, num_levels: int) -> np.ndarray:
    with self.clock("tables"):
      return tables.uniform_table(n, num_levels)

  def _estimate(self, step, head, symbols, values, num_channels: int):
    if step.prior == plan_lib.UNIFORM:
      bits = losses.uniform_bits(self.config, step, math.prod(symbols.shape[:-1]) * num_channels)
    else:
      with self.clock("estimate"):
        bits = float(_estimate_bits(self.config, step, head, values, num_channels))
    _accumulate(self.stats.theory_bits, step.group, bits)

  def write(self, key: str, symbols: np.ndarray, table_iter, per_row: int) -> bytes:
    enc = entropy.StreamEncoder()
    for start, table in self.clock.iterate(iter(table_iter), "tables"):
      with self.clock("coder"):
        enc.encode(symbols[start * per_row:start * per_row + table.shape[0]], table)
    with self.clock("coder"):
      data = enc.finish()
    _accumulate(self.stats.actual_bits, key, 8 * len(data))
    return data

  def read(self, key: str, data: bytes, table_iter, n: int, per_row: int) -> np.ndarray:
    _accumulate(self.stats.actual_bits, key, 8 * len(data))
    with self.clock("coder"):
      dec = entropy.StreamDecoder(data)
    out = np.empty(n, np.int32)
    for start, table in self.clock.iterate(iter(table_iter), "tables"):
      with self.clock("coder"):
        out[start * per_row:start * per_row + table.shape[0]] = dec.decode(table)
    return out


# ---------------------------------------------------------------------------------------------
# Modes -> components.


def _components(image: images.ImageData) -> List[Tuple[int, int, Optional[np.ndarray]]]:
  """(kind, value, plane uint8 [H, W, C] or None) for each component, in coding order."""
  px = image.pixels

  def alpha(plane):
    if np.all(plane == plane.flat[0]):
      return (bitstream.COMPONENT_CONSTANT, int(plane.flat[0]), None)
    return (bitstream.COMPONENT_GRAY, 0, plane[..., None])

  mode = image.mode
  if mode == "RGB":
    return [(bitstream.COMPONENT_RGB, 0, px)]
  if mode in ("L", "1"):
    return [(bitstream.COMPONENT_GRAY, 0, px[..., None])]
  if mode == "RGBA":
    return [(bitstream.COMPONENT_RGB, 0, px[..., :3]), alpha(px[..., 3])]
  if mode == "LA":
    return [(bitstream.COMPONENT_GRAY, 0, px[..., :1]), alpha(px[..., 1])]
  if mode == "P":
    if embedded.palette_rgb_is_invertible(image.palette, px):
      rgb = np.frombuffer(image.palette, np.uint8).reshape(-1, 3)[px]
      return [(bitstream.COMPONENT_RGB, 0, rgb)]
    return [(bitstream.COMPONENT_GRAY, 0, px[..., None])]
  raise CodecError(f"unsupported image mode {mode!r}")


_LAYOUTS = {  # mode -> allowed component kinds, in order
    "RGB": [(bitstream.COMPONENT_RGB,)],
    "L": [(bitstream.COMPONENT_GRAY,)],
    "1": [(bitstream.COMPONENT_GRAY,)],
    "RGBA": [(bitstream.COMPONENT_RGB,), (bitstream.COMPONENT_GRAY, bitstream.COMPONENT_CONSTANT)],
    "LA": [(bitstream.COMPONENT_GRAY,), (bitstream.COMPONENT_GRAY, bitstream.COMPONENT_CONSTANT)],
    "P": [(bitstream.COMPONENT_RGB, bitstream.COMPONENT_GRAY)],
}


def _component_channels(kind: int) -> int:
  return {bitstream.COMPONENT_RGB: 3, bitstream.COMPONENT_GRAY: 1,
          bitstream.COMPONENT_CONSTANT: 1}[kind]


def _assemble(header: bitstream.Header, planes: List[np.ndarray]) -> np.ndarray:
  """Component planes [H, W, C] -> the pixel array of the header's mode."""
  mode = header.mode
  if mode == "RGB":
    return planes[0]
  if mode in ("L", "1"):
    return planes[0][..., 0]
  if mode in ("RGBA", "LA"):
    return np.concatenate(planes, axis=2)
  # mode P
  plane = planes[0]
  if plane.shape[2] == 1:
    return plane[..., 0]
  return embedded.indices_from_rgb(header.palette, plane)


# ---------------------------------------------------------------------------------------------
# Public entry points.


def content_crc32(image: images.ImageData) -> int:
  """`bitstream.content_crc32` of an image: mode, palette, transparency, metadata, pixels."""
  return bitstream.content_crc32(image.mode, image.palette, image.transparency, image.metadata,
                                 np.ascontiguousarray(image.pixels).tobytes())


def _is_few_colour(image: images.ImageData) -> bool:
  if image.mode in ("P", "1"):
    return True
  # At least 16 pixels per colour: a tiny photo crop has few colours only for lack of pixels.
  limit = min(FEW_COLORS, image.num_pixels // 16)
  return image.mode in ("RGB", "RGBA") and embedded.num_colors_at_most(image.pixels, limit)


def _tile_jobs(comps, height: int, width: int, tile_size: int):
  """(component index, y, x, tile_h, tile_w) of every coded tile, in coding order."""
  return [(i, y, x, th, tw) for i, (kind, _, _) in enumerate(comps)
          if kind != bitstream.COMPONENT_CONSTANT
          for y, x, th, tw in tile_grid(height, width, tile_size)]


def encode(image: images.ImageData, model, tile_size: int = DEFAULT_TILE_SIZE,
           estimate: bool = False, method: str = "auto",
           progress: Optional[ProgressFn] = None) -> Tuple[bytes, CodingStats]:
  """Compresses an image losslessly.

  Args:
    image: the image (any supported mode); its metadata is stored with it.
    model: a `model_io.Model`.
    tile_size: tile side in pixels, rounded down to a multiple of 2^S (>= MIN_TILE_SIZE).
    estimate: also compute the model's theoretical bits per scale (a little slower).
    method: 'model', 'png' or 'webp' (embedded classical streams, see `coding.embedded`), or
      'auto': the smallest of the model and PNG (zlib level 9), so a file is never larger than
      the image's PNG plus the container; few-colour images (palette, bilevel, RGB(A) with at
      most FEW_COLORS colours) are not run through the model but try PNG and WebP.
    progress: optional `progress(done, total)`, called with cumulative work units (pixels of
      the coded components' tiles, apportioned over each tile's coding steps) as coding
      proceeds: first with (0, total), last with (total, total). Tiles are coded in threads, so
      it may be called from a worker thread (never from two at once). Embedded streams report
      (1, 1) once done.
  Returns:
    (file bytes, CodingStats).
  Raises:
    CodecError: a bad tile size or method, or a method that cannot hold the image (WebP: a
      palette image whose colours do not identify its indices).
  """
  t0 = time.perf_counter()
  if method not in METHODS:
    raise CodecError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
  if int(tile_size) < MIN_TILE_SIZE:
    raise CodecError(f"tile size {tile_size} is below the minimum {MIN_TILE_SIZE}")
  model = model.exact
  if method == "auto":
    few = _is_few_colour(image)
    names = ["png", "webp"] if few else ["png", "model"]
  else:
    names = [method]
  crc = content_crc32(image)  # once: every candidate's header holds it
  candidates = []
  # The embedded streams are made on a second thread while the model codes: zlib and libwebp
  # release the GIL, and the model leaves a core idle while the range coder runs.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pending = [pool.submit(_encode_embedded, image, model, name, crc)
               for name in names if name != "model"]
    if "model" in names:
      stats = CodingStats(num_subpixels=image.num_subpixels)
      candidates.append((_encode_model(image, model, tile_size, estimate, stats, crc,
                                       progress), stats))
    candidates += [c for c in (f.result() for f in pending) if c is not None]
  for data, stats in candidates:
    stats.file_bits = 8 * len(data)
    stats.header_bits = stats.file_bits - int(sum(stats.actual_bits.values()))
  if progress is not None and "model" not in names:
    progress(1, 1)
  if not candidates:
    raise CodecError(f"method {method} cannot hold this image (a palette image whose colours "
                     "do not identify its indices)")
  data, stats = min(candidates, key=lambda c: len(c[0]))
  stats.times_s["total"] = time.perf_counter() - t0
  return data, stats


def _encode_embedded(image: images.ImageData, model, name: str, crc: int
                     ) -> Optional[Tuple[bytes, CodingStats]]:
  """(file, stats) of `image` as an embedded 'png' or 'webp' stream; None if WebP cannot hold
  it."""
  stats = CodingStats(num_subpixels=image.num_subpixels)
  kind = bitstream.METHOD_PNG if name == "png" else bitstream.METHOD_WEBP
  stats.method = kind
  with _Clock(stats.times_s)(name):
    stream = embedded.encode(image, kind)
  if stream is None:
    return None
  stats.actual_bits[name] = 8 * len(stream)
  return bitstream.pack(_image_header(image, model, kind, crc, 0, (), ()), [stream]), stats


def _image_header(image, model, method, crc, tile_size, components, tile_crcs
                  ) -> bitstream.Header:
  """The header of `image` coded by `method`; `crc` is its `content_crc32`."""
  factor = model.config.padding_factor if method == bitstream.METHOD_MODEL else 1
  return bitstream.Header(
      fingerprint=bytes.fromhex(model.fingerprint)[:bitstream.FINGERPRINT_BYTES],
      mode=image.mode, height=image.height, width=image.width, tile_size=tile_size,
      pad_h=-image.height % factor, pad_w=-image.width % factor,
      content_crc32=crc, components=tuple(components),
      palette=image.palette, transparency=image.transparency, stream_lengths=(),
      payload_crc32=0, method=method, metadata=image.metadata, tile_crc32s=tuple(tile_crcs))


def _encode_model(image: images.ImageData, model, tile_size: int, estimate: bool,
                  stats: CodingStats, crc: int, progress: Optional[ProgressFn] = None
                  ) -> bytes:
  """The file of `image` coded with the (exact) model (`progress` as for `encode`)."""
  cfg = model.config
  factor = cfg.padding_factor
  tile_size = max(factor, (int(tile_size) // factor) * factor)
  coder = _TileCoder(model, stats, estimate)
  comps = _components(image)
  jobs = _tile_jobs(comps, image.height, image.width, tile_size)
  _bound_compiled_shapes(cfg, "encode", [kind for kind, _, _ in comps], jobs)
  tracker = _Progress(progress, sum(th * tw for _, _, _, th, tw in jobs))

  def encode_tile(job):
    i, y, x, th, tw = job
    tile = coder.for_tile(tracker.tile(th * tw, len(coder.plan)))
    pixels = np.ascontiguousarray(comps[i][2][y:y + th, x:x + tw])
    return tile.encode(pixels), bitstream.crc32(pixels.tobytes()), tile.stats

  streams, tile_crcs = [], []
  for tile_streams, tile_crc, tile_stats in _map_tiles(encode_tile, jobs):
    streams.extend(tile_streams)
    tile_crcs.append(tile_crc)
    _merge_stats(stats, tile_stats)
  header = _image_header(image, model, bitstream.METHOD_MODEL, crc, tile_size,
                         [(k, v) for k, v, _ in comps], tile_crcs)
  return bitstream.pack(header, streams)


def _validate_image_fields(header: bitstream.Header):
  """Checks that hold for every method: palette, transparency, padding of embedded streams."""
  if (header.mode == "P") != (header.palette is not None):
    raise CodecError("corrupt header (palette present iff mode P)")
  if header.transparency is not None and header.mode != "P":
    raise CodecError("corrupt header (transparency outside mode P)")
  if header.method != bitstream.METHOD_MODEL:
    if (header.components or header.tile_crc32s or len(header.stream_lengths) != 1
        or header.pad_h or header.pad_w):
      raise CodecError("corrupt header (fields of the model method in an embedded stream)")


def _validate(header: bitstream.Header, config, model_fingerprint: str):
  fp = bytes.fromhex(model_fingerprint)[:bitstream.FINGERPRINT_BYTES]
  if header.fingerprint != fp:
    raise CodecError(f"file was compressed with a different model (fingerprint "
                     f"{header.fingerprint.hex()}, this model is {fp.hex()}); "
                     "decode it with the model that encoded it")
  factor = config.padding_factor
  if header.tile_size < MIN_TILE_SIZE and header.tile_size < max(header.height, header.width):
    raise CodecError(f"corrupt header (tile size {header.tile_size} is below the minimum "
                     f"{MIN_TILE_SIZE})")
  if header.tile_size % factor:
    raise CodecError(f"corrupt header (tile size {header.tile_size} is not a multiple of "
                     f"{factor})")
  if (header.pad_h, header.pad_w) != (-header.height % factor, -header.width % factor):
    raise CodecError("corrupt header (padding does not match the image size)")
  layout = _LAYOUTS[header.mode]
  kinds = [k for k, _ in header.components]
  if len(kinds) != len(layout) or any(k not in allowed for k, allowed in zip(kinds, layout)):
    raise CodecError(f"corrupt header (components {kinds} do not fit mode {header.mode})")
  if any(v and k != bitstream.COMPONENT_CONSTANT for k, v in header.components):
    raise CodecError("corrupt header (value set on a coded component)")
  # Counted, not listed: a forged 46340 x 46340 image of 8-pixel tiles would be 33.5 M tiles; the
  # count must match the header's list of substream lengths (bounded by the file) first.
  num_tiles = -(-header.height // header.tile_size) * -(-header.width // header.tile_size)
  expected = sum(num_tiles * _streams_per_tile(config, _component_channels(k))
                 for k in kinds if k != bitstream.COMPONENT_CONSTANT)
  if len(header.stream_lengths) != expected:
    raise CodecError(f"corrupt header ({len(header.stream_lengths)} substreams, expected "
                     f"{expected})")
  coded = sum(k != bitstream.COMPONENT_CONSTANT for k in kinds)
  if header.version != 2 and len(header.tile_crc32s) != num_tiles * coded:
    raise CodecError(f"corrupt header ({len(header.tile_crc32s)} tile checksums, expected "
                     f"{num_tiles * coded})")
  # Every symbol of the top step costs log2(L) bits under the uniform prior, so its substreams
  # bound the image size by the file size: a forged size cannot make us decode for hours.
  top = families.plan(config)[0]
  i = 0
  for k in kinds:
    if k == bitstream.COMPONENT_CONSTANT:
      continue
    for _, _, th, tw in tile_grid(header.height, header.width, header.tile_size):
      n_top = _top_symbols(config, images.padded_size(th, factor),
                           images.padded_size(tw, factor), _component_channels(k))
      min_bytes = int(losses.uniform_bits(config, top, n_top) / 8) - 8
      if header.stream_lengths[i] < min_bytes:
        raise CodecError("corrupt header (image size does not match the data)")
      i += _streams_per_tile(config, _component_channels(k))


# The header and payload checksums passed, so the bytes are as the encoder wrote them; with exact
# numerics both sides compute the same tables, so a failure here is a bug (or a forged file).
_INTACT_BUT_WRONG = ("the file's checksums are intact but it did not decode: its probability "
                     "tables differ from the encoder's (a bug in l3c-jax, please report it with "
                     "the file; or a file altered with its checksums recomputed)")


def decode(data: bytes, model, progress: Optional[ProgressFn] = None
           ) -> Tuple[images.ImageData, CodingStats]:
  """Decompresses a file made by `encode` with the same model.

  Args:
    data: the file's bytes.
    model: the `model_io.Model` that encoded it (files holding an embedded PNG / WebP stream
      decode without it: None is enough for them).
    progress: optional `progress(done, total)`, as for `encode` (same units, same total for
      the same image), called once the header is validated.
  Returns:
    (image, CodingStats); the image carries the file's metadata.
  Raises:
    CodecError: with a one-line message for every kind of bad input (not an l3c-jax file,
      newer format, other model, truncated, corrupt); never returns a wrong image.
  """
  t0 = time.perf_counter()
  header, streams = bitstream.unpack(data)
  _validate_image_fields(header)
  stats = CodingStats(file_bits=8 * len(data),
                      header_bits=8 * (len(data) - sum(header.stream_lengths)),
                      method=header.method)
  if header.method == bitstream.METHOD_MODEL:
    if model is None:
      raise CodecError("this file was coded with a model; give the model that encoded it")
    model = model.exact
    _validate(header, model.config, model.fingerprint)
    pixels = _decode_model(header, streams, model, stats, progress)
  else:
    name = bitstream.METHOD_NAMES[header.method]
    with _Clock(stats.times_s)(name):
      pixels = embedded.decode(header, streams[0])
    stats.actual_bits[name] = 8 * len(streams[0])
    if progress is not None:
      progress(1, 1)
  pixels = np.ascontiguousarray(pixels)
  if header.version == 2:  # format 2: the CRC covers the pixel bytes alone
    crc = bitstream.crc32(pixels.tobytes())
  else:
    crc = bitstream.content_crc32(header.mode, header.palette, header.transparency,
                                  header.metadata, pixels.tobytes())
  if crc != header.content_crc32:
    raise CodecError(f"{_INTACT_BUT_WRONG} (decoded image fails its checksum)")
  try:
    image = images.ImageData(pixels, header.mode, header.palette, header.transparency,
                             header.metadata)
  except images.ImageError as e:
    raise CodecError(f"corrupt data ({e})") from None
  stats.num_subpixels = image.num_subpixels
  stats.times_s["total"] = time.perf_counter() - t0
  return image, stats


def _decode_model(header: bitstream.Header, streams, model, stats: CodingStats,
                  progress: Optional[ProgressFn] = None) -> np.ndarray:
  """The pixel array of a METHOD_MODEL file (checked tile by tile where the file has tile
  checksums, so a damaged or forged tile stops decoding at that tile)."""
  cfg = model.config
  try:
    coder = _TileCoder(model, stats)
    jobs = _tile_jobs([(k, v, None) for k, v in header.components], header.height,
                      header.width, header.tile_size)
    _bound_compiled_shapes(cfg, "decode", [kind for kind, _ in header.components], jobs)
    tracker = _Progress(progress, sum(th * tw for _, _, _, th, tw in jobs))
    # Each tile's substreams, in file order (_validate checked their count).
    tile_streams, first = [], 0
    for i, _, _, _, _ in jobs:
      n = _streams_per_tile(cfg, _component_channels(header.components[i][0]))
      tile_streams.append(streams[first:first + n])
      first += n
    tile_crcs = header.tile_crc32s or None  # format 2 files have none

    def decode_tile(job_index):
      i, y, x, th, tw = jobs[job_index]
      tile = coder.for_tile(tracker.tile(th * tw, len(coder.plan)))
      c = _component_channels(header.components[i][0])
      pixels = tile.decode(iter(tile_streams[job_index]), th, tw, c,
                           windowed=header.version >= 4)
      if tile_crcs is not None and bitstream.crc32(
          np.ascontiguousarray(pixels).tobytes()) != tile_crcs[job_index]:
        raise CodecError(f"{_INTACT_BUT_WRONG} (the tile at x={x}, y={y} fails its checksum)")
      return pixels, tile.stats

    decoded = _map_tiles(decode_tile, range(len(jobs)))
    planes = []
    for kind, value in header.components:
      c = _component_channels(kind)
      if kind == bitstream.COMPONENT_CONSTANT:
        planes.append(np.full((header.height, header.width, 1), value, np.uint8))
        continue
      planes.append(np.empty((header.height, header.width, c), np.uint8))
    for (i, y, x, th, tw), (pixels, tile_stats) in zip(jobs, decoded):
      planes[i][y:y + th, x:x + tw] = pixels
      _merge_stats(stats, tile_stats)
    return _assemble(header, planes)
  except CodecError:
    raise
  except entropy.StreamError as e:
    raise CodecError(f"{_INTACT_BUT_WRONG} ({e})") from None
  except Exception as e:  # anything else on untrusted input is reported, not raised raw
    raise CodecError(f"corrupt data ({type(e).__name__}: {e})") from None
