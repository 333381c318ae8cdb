"""The L3C lossless image codec: ImageData <-> `.l3c` bytes (l3c_spec.md Sec. 6).

Coding order, per coded plane group and tile (the decoder's order, l3c_spec.md Sec. 6.1):
  z^(S) with the uniform prior over its L levels; then for s = S..2 the head of D^(s) gives the
  tables of z^(s-1); then D^(1)'s head gives the pixels: R, then G | R, then B | R, G.
Each of these is one range-coded substream (latents: (position, channel) raster order; pixels:
raster order). The RGB baselines (config.rgb_bicubic_baseline) code their bicubic pyramid the same
way: x^(S) with the uniform prior over 256 levels, then for s = S..1 the head of D^(s) gives the
tables of x^(s-1), R, then G | R, then B | R, G (gray planes: the one channel only). With
config.phase_context each x^(s-1) is coded in four phases (models.l3c.PHASES), each phase's
tables coming from its head on D^(s)'s features and the already decoded earlier phases (with
config.subsample_pyramid phase 0 is x^(s) itself and is not coded).
The encoder takes the symbols from `L3C.encode` (hard quantization) and then runs exactly the
decoder's computation: the same jitted `decode_scale` on the same hard symbols, and the same
jitted, chunked table functions (`coding.tables`) on the same inputs, so both sides build
bit-identical integer tables. The training forward pass is never used.

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
The header ends with a CRC32 of the decoded pixels, checked before anything is returned.
"""

import contextlib
import dataclasses
import functools
import math
import time
from typing import Dict, Iterator, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from l3c_jax import likelihood
from l3c_jax.coding import bitstream
from l3c_jax.coding import entropy
from l3c_jax.coding import tables
from l3c_jax.coding.bitstream import CodecError
from l3c_jax.data import images
from l3c_jax.models import quantizer
from l3c_jax.models.config import L3CConfig
from l3c_jax.models.l3c import L3C, PHASES, first_coded_phase, phase_slice

DEFAULT_TILE_SIZE = 1024
_LN2 = math.log(2.0)


@dataclasses.dataclass
class CodingStats:
  """What one encode or decode did.

  Attributes:
    num_subpixels: H * W * channels of the image (the bpsp denominator).
    file_bits: size of the whole file in bits.
    header_bits: bits of the container (everything but the substreams).
    actual_bits: bits written per scale ('z{S}', ..., 'z1', 'x'), summed over tiles/components.
    theory_bits: the model's -log2 p of the same symbols per scale (encoder with
      estimate=True only; 'z{S}' is the uniform prior's n * log2 L).
    times_s: wall seconds per stage: 'network' (encoders + per-scale decoders), 'tables'
      (waiting for integer tables), 'coder' (range coding), 'estimate', 'total'.
  """
  num_subpixels: int = 0
  file_bits: int = 0
  header_bits: int = 0
  actual_bits: Dict[str, float] = dataclasses.field(default_factory=dict)
  theory_bits: Dict[str, float] = dataclasses.field(default_factory=dict)
  times_s: Dict[str, float] = dataclasses.field(default_factory=dict)

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


# ---------------------------------------------------------------------------------------------
# Jitted network pieces (shared by encoder and decoder; cached per config and shape).


@functools.partial(jax.jit, static_argnums=(0,))
def _encode_net(config: L3CConfig, params, x):
  """[1, H, W, 3] float32 -> S symbol arrays [1, H/2^s, W/2^s, C_q] int32 (hard)."""
  symbols, _ = L3C(config).apply({"params": params}, x, False, method=L3C.encode)
  return tuple(s.astype(jnp.int32) for s in symbols)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _decode_net(config: L3CConfig, params, s: int, symbols, f_above):
  """D^(s) + head s on the hard values of z^(s) -> (f^(s), head params)."""
  levels = jnp.asarray(quantizer.quantization_levels(
      config.num_levels, config.levels_min, config.levels_max))
  if config.rgb_bicubic_baseline:
    z = symbols.astype(jnp.float32)  # the "symbols" of the RGB pyramid are pixel values
  else:
    z = quantizer.from_symbols(symbols, levels)
  return L3C(config).apply({"params": params}, s, z, f_above, method=L3C.decode_scale)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _phase_net(config: L3CConfig, params, s: int, p: int, f, x_coarse, known):
  """Head of phase p of x^(s-1) (config.phase_context) -> [1, h, w, K_p]."""
  return L3C(config).apply({"params": params}, s, p, f, x_coarse, known, method=L3C.phase_head)


@functools.partial(jax.jit, static_argnums=(0,))
def _latent_theory_bits(config: L3CConfig, head, symbols):
  levels = jnp.asarray(quantizer.quantization_levels(
      config.num_levels, config.levels_min, config.levels_max))
  alphabet = likelihood.latent_alphabet(config.num_levels, config.levels_min, config.levels_max)
  lp = likelihood.log_prob(head, quantizer.from_symbols(symbols, levels), alphabet,
                           config.num_mixtures, False, config.log_scale_min)
  return -jnp.sum(lp) / _LN2


@functools.partial(jax.jit, static_argnums=(0, 3))
def _pixel_theory_bits(config: L3CConfig, head, x, num_channels: int):
  lp = likelihood.log_prob(head, x, likelihood.RGB_ALPHABET, config.num_mixtures, True,
                           config.log_scale_min)
  return -jnp.sum(lp[..., :num_channels]) / _LN2


# ---------------------------------------------------------------------------------------------
# One tile of one component.


def _streams_per_tile(config: L3CConfig, num_channels: int) -> int:
  """Substreams of one tile of a component with num_channels coded channels."""
  if config.rgb_bicubic_baseline:
    # top image, then C per finer scale (per coded phase of it with phase_context)
    return 1 + config.num_scales * num_channels * _coded_phases(config)
  return config.num_scales + num_channels        # z^(S..1), then C pixel channels


def _coded_phases(config: L3CConfig) -> int:
  """Phases coded per finer image: 1 without phase_context, else those not already known."""
  if not config.phase_context:
    return 1
  return len(PHASES) - first_coded_phase(config)


def _top_symbols(config: L3CConfig, height_padded: int, width_padded: int,
                 num_channels: int) -> int:
  """Symbols of the uniformly coded top scale of one padded tile."""
  per_pos = num_channels if config.rgb_bicubic_baseline else config.latent_channels
  return height_padded * width_padded // config.padding_factor ** 2 * per_pos


def _network_input(plane: np.ndarray) -> jax.Array:
  """uint8 [h, w, C] (C = 1 or 3) -> float32 [1, h, w, 3]; gray is replicated to RGB."""
  if plane.shape[2] == 1:
    plane = np.repeat(plane, 3, axis=2)
  return jnp.asarray(plane[None].astype(np.float32))


def _x_prev_rows(pixels: np.ndarray, channel: int, num_rows_padded: int) -> jax.Array:
  """[n_pad, 3] float32: channels < `channel` from pixels [n, C], everything else 0."""
  x_prev = np.zeros((num_rows_padded, 3), np.float32)
  x_prev[:pixels.shape[0], :channel] = pixels[:, :channel]
  return jnp.asarray(x_prev)


class _TileCoder:
  """Codes the tiles of a model; encoder and decoder share the per-scale loop."""

  def __init__(self, model, stats: CodingStats, estimate: bool = False):
    self.config: L3CConfig = model.config
    # On the device once, not at every jitted call (a no-op for jax arrays).
    self.params = jax.tree_util.tree_map(jnp.asarray, model.params)
    self.stats = stats
    self.clock = _Clock(stats.times_s)
    self.estimate = estimate

  def _decode_scale(self, s, symbols, f_above):
    with self.clock("network"):
      f, head = _decode_net(self.config, self.params, s, symbols, f_above)
      jax.block_until_ready(head)
    return f, head

  def _uniform_table(self, n: int) -> np.ndarray:
    with self.clock("tables"):
      return tables.uniform_table(n, self.config.num_levels)

  def _latent_rows(self, head):
    n = head.shape[1] * head.shape[2]
    with self.clock("tables"):
      return tables.to_rows(head, tables.latent_chunk_positions(n, self.config)), n

  def _pixel_rows(self, head):
    n = head.shape[1] * head.shape[2]
    with self.clock("tables"):
      return tables.to_rows(head, tables.chunk_rows_for(n)), n

  # -- encoder ---------------------------------------------------------------------------------

  def encode(self, plane: np.ndarray) -> List[bytes]:
    """uint8 [h, w, C] (C = 1 or 3) -> S + C substreams."""
    cfg = self.config
    num_scales, c_q = cfg.num_scales, cfg.latent_channels
    padded, _ = images.pad_to_multiple(plane, cfg.padding_factor)
    if cfg.rgb_bicubic_baseline:
      return self._encode_pyramid(padded)
    with self.clock("network"):
      symbols = _encode_net(cfg, self.params, _network_input(padded))
      symbols_np = [np.asarray(s) for s in symbols]
    streams = []
    top = symbols_np[num_scales - 1].reshape(-1)
    streams.append(self._encode_symbols(f"z{num_scales}", top, [(0, self._uniform_table(
        top.size))]))
    if self.estimate:
      _accumulate(self.stats.theory_bits, f"z{num_scales}",
                      top.size * math.log2(cfg.num_levels))
    f = None
    for s in range(num_scales, 0, -1):
      f, head = self._decode_scale(s, symbols[s - 1], f)
      if s > 1:
        target = symbols_np[s - 2].reshape(-1)
        rows, n = self._latent_rows(head)
        streams.append(self._encode_symbols(
            f"z{s - 1}", target, tables.latent_tables(rows, n, cfg), c_q))
        if self.estimate:
          with self.clock("estimate"):
            bits = float(_latent_theory_bits(cfg, head, symbols[s - 2]))
          _accumulate(self.stats.theory_bits, f"z{s - 1}", bits)
      else:
        streams.extend(self._encode_pixels(head, padded))
    return streams

  def _encode_symbols(self, key: str, symbols: np.ndarray, table_iter, per_row: int = 1
                      ) -> bytes:
    enc = entropy.StreamEncoder()
    for start, table in self.clock.iterate(iter(table_iter), "tables"):
      with self.clock("coder"):
        enc.encode(symbols[start * per_row:start * per_row + table.shape[0]], table)
    with self.clock("coder"):
      data = enc.finish()
    _accumulate(self.stats.actual_bits, key, 8 * len(data))
    return data

  def _encode_pyramid(self, padded: np.ndarray) -> List[bytes]:
    """RGB baselines: x^(S) uniformly, then each finer image given the coarser one."""
    cfg = self.config
    num_channels = padded.shape[2]
    with self.clock("network"):
      symbols = _encode_net(cfg, self.params, _network_input(padded))
      # Gray planes are replicated to RGB, so their pyramids are too: code channel 0 only.
      pyramid = [np.asarray(s)[0, ..., :num_channels].astype(np.uint8) for s in symbols]
    top = pyramid[-1].reshape(-1)
    key = f"z{cfg.num_scales}"
    streams = [self._encode_symbols(key, top, [(0, self._uniform_table(top.size))])]
    if self.estimate:
      _accumulate(self.stats.theory_bits, key, top.size * math.log2(cfg.num_levels))
    f = None
    for s in range(cfg.num_scales, 0, -1):
      f, head = self._decode_scale(s, symbols[s - 1], f)
      target = pyramid[s - 2] if s > 1 else padded
      key = f"z{s - 1}" if s > 1 else "x"
      if not cfg.phase_context:
        streams.extend(self._encode_pixels(head, target, key))
        continue
      coarse = symbols[s - 1].astype(jnp.float32)
      full = _network_input(target)
      for p in range(first_coded_phase(cfg), len(PHASES)):
        head = self._phase_head(s, p, f, coarse, full, p)
        part = np.ascontiguousarray(phase_slice(target[None], p)[0])
        streams.extend(self._encode_pixels(head, part, key))
    return streams

  def _phase_head(self, s: int, p: int, f, coarse, full, num_known: int):
    """Head of phase p; full [1, 2h, 2w, 3] holds (at least) the pixels of phases < p."""
    with self.clock("network"):
      known = None
      if num_known:
        known = jnp.concatenate([phase_slice(full, q) for q in range(num_known)], axis=-1)
      head = _phase_net(self.config, self.params, s, p, f, coarse, known)
      jax.block_until_ready(head)
    return head

  def _encode_pixels(self, head, padded: np.ndarray, key: str = "x") -> List[bytes]:
    num_channels = padded.shape[2]
    rows, n = self._pixel_rows(head)
    pixels = padded.reshape(n, num_channels)
    streams = []
    for c in range(num_channels):
      x_prev = _x_prev_rows(pixels, c, rows.shape[0])
      streams.append(self._encode_symbols(
          key, pixels[:, c], tables.pixel_tables(rows, x_prev, n, c, self.config)))
    if self.estimate:
      with self.clock("estimate"):
        bits = float(_pixel_theory_bits(self.config, head, _network_input(padded),
                                        num_channels))
      _accumulate(self.stats.theory_bits, key, bits)
    return streams

  # -- decoder ---------------------------------------------------------------------------------

  def decode(self, streams: Iterator[bytes], height: int, width: int, num_channels: int
             ) -> np.ndarray:
    """Substreams of one tile -> uint8 [height, width, num_channels]."""
    cfg = self.config
    f = cfg.padding_factor
    hp, wp = images.padded_size(height, f), images.padded_size(width, f)
    if cfg.rgb_bicubic_baseline:
      return self._decode_pyramid(streams, hp, wp, num_channels)[:height, :width]
    num_scales, c_q = cfg.num_scales, cfg.latent_channels
    hs, ws = hp >> num_scales, wp >> num_scales
    n_top = hs * ws * c_q
    top = self._decode_symbols(f"z{num_scales}", next(streams),
                               [(0, self._uniform_table(n_top))], n_top)
    symbols = jnp.asarray(top.reshape(1, hs, ws, c_q))
    f_above = None
    for s in range(num_scales, 0, -1):
      f_above, head = self._decode_scale(s, symbols, f_above)
      if s > 1:
        rows, n = self._latent_rows(head)
        sym = self._decode_symbols(f"z{s - 1}", next(streams),
                                   tables.latent_tables(rows, n, cfg), n * c_q, c_q)
        symbols = jnp.asarray(sym.reshape(1, head.shape[1], head.shape[2], c_q))
      else:
        pixels = self._decode_pixels(streams, head, num_channels)
    return pixels.reshape(hp, wp, num_channels)[:height, :width]

  def _decode_symbols(self, key: str, data: bytes, table_iter, n: int, per_row: int = 1
                      ) -> np.ndarray:
    _accumulate(self.stats.actual_bits, key, 8 * len(data))
    with self.clock("coder"):
      dec = entropy.StreamDecoder(data)
    out = np.empty(n, np.int32)
    for start, table in self.clock.iterate(iter(table_iter), "tables"):
      with self.clock("coder"):
        out[start * per_row:start * per_row + table.shape[0]] = dec.decode(table)
    return out

  def _decode_pyramid(self, streams, hp: int, wp: int, num_channels: int) -> np.ndarray:
    cfg = self.config
    hs, ws = hp >> cfg.num_scales, wp >> cfg.num_scales
    n_top = _top_symbols(cfg, hp, wp, num_channels)
    image = self._decode_symbols(f"z{cfg.num_scales}", next(streams),
                                 [(0, self._uniform_table(n_top))], n_top)
    image = image.reshape(hs, ws, num_channels)
    f = None
    for s in range(cfg.num_scales, 0, -1):
      coarse = _network_input(image.astype(np.uint8))
      f, head = self._decode_scale(s, coarse.astype(jnp.int32), f)
      key = f"z{s - 1}" if s > 1 else "x"
      if not cfg.phase_context:
        pixels = self._decode_pixels(streams, head, num_channels, key)
        image = pixels.reshape(head.shape[1], head.shape[2], num_channels)
        continue
      h, w = image.shape[:2]
      coarse_np, image = image, np.zeros((2 * h, 2 * w, num_channels), np.uint8)
      if cfg.subsample_pyramid:
        image[0::2, 0::2] = coarse_np  # phase 0 is x^(s) itself
      for p in range(first_coded_phase(cfg), len(PHASES)):
        head = self._phase_head(s, p, f, coarse, _network_input(image), p)
        pixels = self._decode_pixels(streams, head, num_channels, key)
        image[PHASES[p][0]::2, PHASES[p][1]::2] = pixels.reshape(h, w, num_channels)
    return image

  def _decode_pixels(self, streams, head, num_channels: int, key: str = "x") -> np.ndarray:
    rows, n = self._pixel_rows(head)
    pixels = np.zeros((n, num_channels), np.uint8)
    for c in range(num_channels):
      x_prev = _x_prev_rows(pixels, c, rows.shape[0])
      pixels[:, c] = self._decode_symbols(
          key, next(streams), tables.pixel_tables(rows, x_prev, n, c, self.config), n)
    return pixels


# ---------------------------------------------------------------------------------------------
# Modes -> components.


def _palette_colors(palette: bytes) -> np.ndarray:
  """[n] uint32 keys r << 16 | g << 8 | b of the palette entries."""
  p = np.frombuffer(palette, np.uint8).reshape(-1, 3).astype(np.uint32)
  return (p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2]


def _palette_rgb_is_invertible(image: images.ImageData) -> bool:
  """True if every used index is the first palette entry with its colour."""
  keys = _palette_colors(image.palette)
  _, first = np.unique(keys, return_index=True)
  first_of_color = np.zeros(len(keys), bool)
  first_of_color[first] = True
  used = np.unique(image.pixels)
  return bool(np.all(first_of_color[used]))


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
    if _palette_rgb_is_invertible(image):
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
  keys = _palette_colors(header.palette)
  uniq, first = np.unique(keys, return_index=True)
  px = plane.astype(np.uint32)
  px_keys = (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]
  pos = np.clip(np.searchsorted(uniq, px_keys), 0, len(uniq) - 1)
  if not np.all(uniq[pos] == px_keys):
    raise CodecError("corrupt data (decoded colour not in the palette)")
  return first[pos].astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Public entry points.


def pixel_crc32(pixels: np.ndarray) -> int:
  return bitstream.crc32(np.ascontiguousarray(pixels).tobytes())


def encode(image: images.ImageData, model, tile_size: int = DEFAULT_TILE_SIZE,
           estimate: bool = False) -> Tuple[bytes, CodingStats]:
  """Compresses an image losslessly.

  Args:
    image: the image (any supported mode).
    model: a `model_io.Model`.
    tile_size: tile side in pixels, rounded down to a multiple of 2^S (>= 2^S).
    estimate: also compute the model's theoretical bits per scale (a little slower).
  Returns:
    (file bytes, CodingStats).
  """
  t0 = time.perf_counter()
  cfg = model.config
  factor = cfg.padding_factor
  tile_size = max(factor, (int(tile_size) // factor) * factor)
  stats = CodingStats(num_subpixels=image.num_subpixels)
  coder = _TileCoder(model, stats, estimate)
  comps = _components(image)
  streams = []
  for kind, _, plane in comps:
    if kind == bitstream.COMPONENT_CONSTANT:
      continue
    for y, x, th, tw in images.tile_grid(image.height, image.width, tile_size):
      streams.extend(coder.encode(np.ascontiguousarray(plane[y:y + th, x:x + tw])))
  header = bitstream.Header(
      fingerprint=bytes.fromhex(model.fingerprint)[:bitstream.FINGERPRINT_BYTES],
      mode=image.mode, height=image.height, width=image.width, tile_size=tile_size,
      pad_h=-image.height % factor, pad_w=-image.width % factor,
      pixel_crc32=pixel_crc32(image.pixels),
      components=tuple((k, v) for k, v, _ in comps), palette=image.palette,
      transparency=image.transparency, stream_lengths=(), payload_crc32=0)
  data = bitstream.pack(header, streams)
  stats.file_bits = 8 * len(data)
  stats.header_bits = 8 * (len(data) - sum(len(s) for s in streams))
  stats.times_s["total"] = time.perf_counter() - t0
  return data, stats


def _validate(header: bitstream.Header, config: L3CConfig, model_fingerprint: str):
  fp = bytes.fromhex(model_fingerprint)[:bitstream.FINGERPRINT_BYTES]
  if header.fingerprint != fp:
    raise CodecError(f"file was compressed with a different model (fingerprint "
                     f"{header.fingerprint.hex()}, this model is {fp.hex()}); "
                     "decode it with the model that encoded it")
  factor = config.padding_factor
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
  if (header.mode == "P") != (header.palette is not None):
    raise CodecError("corrupt header (palette present iff mode P)")
  if header.transparency is not None and header.mode != "P":
    raise CodecError("corrupt header (transparency outside mode P)")
  num_tiles = len(images.tile_grid(header.height, header.width, header.tile_size))
  expected = sum(num_tiles * _streams_per_tile(config, _component_channels(k))
                 for k in kinds if k != bitstream.COMPONENT_CONSTANT)
  if len(header.stream_lengths) != expected:
    raise CodecError(f"corrupt header ({len(header.stream_lengths)} substreams, expected "
                     f"{expected})")
  # Every z^(S) symbol costs log2(L) bits under the uniform prior, so the top substreams bound
  # the image size by the file size: a forged size cannot make us decode for hours.
  i = 0
  for k in kinds:
    if k == bitstream.COMPONENT_CONSTANT:
      continue
    for _, _, th, tw in images.tile_grid(header.height, header.width, header.tile_size):
      n_top = _top_symbols(config, images.padded_size(th, factor),
                           images.padded_size(tw, factor), _component_channels(k))
      min_bytes = int(n_top * math.log2(config.num_levels) / 8) - 8
      if header.stream_lengths[i] < min_bytes:
        raise CodecError("corrupt header (image size does not match the data)")
      i += _streams_per_tile(config, _component_channels(k))


def decode(data: bytes, model) -> Tuple[images.ImageData, CodingStats]:
  """Decompresses a file made by `encode` with the same model.

  Returns:
    (image, CodingStats).
  Raises:
    CodecError: with a one-line message for every kind of bad input (not an l3c-jax file,
      newer format, other model, truncated, corrupt); never returns a wrong image.
  """
  t0 = time.perf_counter()
  cfg = model.config
  header, streams = bitstream.unpack(data)
  _validate(header, cfg, model.fingerprint)
  stats = CodingStats(file_bits=8 * len(data),
                      header_bits=8 * (len(data) - sum(header.stream_lengths)))
  try:
    coder = _TileCoder(model, stats)
    stream_iter = iter(streams)
    planes = []
    for kind, value in header.components:
      c = _component_channels(kind)
      if kind == bitstream.COMPONENT_CONSTANT:
        planes.append(np.full((header.height, header.width, 1), value, np.uint8))
        continue
      plane = np.empty((header.height, header.width, c), np.uint8)
      for y, x, th, tw in images.tile_grid(header.height, header.width, header.tile_size):
        plane[y:y + th, x:x + tw] = coder.decode(stream_iter, th, tw, c)
      planes.append(plane)
    pixels = _assemble(header, planes)
  except CodecError:
    raise
  except entropy.StreamError as e:
    raise CodecError(f"corrupt data ({e})") from None
  except Exception as e:  # anything else on untrusted input is reported, not raised raw
    raise CodecError(f"corrupt data ({type(e).__name__}: {e})") from None
  if pixel_crc32(pixels) != header.pixel_crc32:
    raise CodecError("decoded image does not match its checksum (corrupt file, or a "
                     "platform whose floating point differs from the encoder's)")
  try:
    image = images.ImageData(np.ascontiguousarray(pixels), header.mode, header.palette,
                             header.transparency)
  except images.ImageError as e:
    raise CodecError(f"corrupt data ({e})") from None
  stats.num_subpixels = image.num_subpixels
  stats.times_s["total"] = time.perf_counter() - t0
  return image, stats
