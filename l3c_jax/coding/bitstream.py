"""The `.l3c` container: a self-describing, checksummed header followed by the substreams.

Layout (all integers little-endian):

  offset  size  field
  0       4     magic b"L3CJ"
  4       1     format version (FORMAT_VERSION)
  5       4     body length B (bytes)
  9       B     body:
                  16  model fingerprint (first 16 bytes of the model's sha256)
                   1  numerics version (how the decoder must compute its tables; see
                      models.fixed_point: 1 = exact fixed point, portable)
                   1  image mode code (MODE_CODES)
                   4  height, 4 width (pixels, unpadded)
                   4  tile size (pixels; a multiple of 2^S)
                   1  bottom padding, 1 right padding of the last tile row / column
                   4  CRC32 of the decoded pixel bytes (ImageData.pixels, C order)
                   1  number of components; per component 1 kind (COMPONENT_*) + 1 value
                   2  palette length P, then P palette bytes (mode 'P' only)
                   1  transparency kind (0 none, 1 index, 2 per-index alpha), then
                      2 bytes index, or 2 bytes length T + T alpha bytes
                   4  number of substreams N, then N x 4 substream lengths (bytes)
                   4  CRC32 of the payload (all substreams)
  9 + B   4     CRC32 of bytes [0, 9 + B)
  ...           payload: the N substreams back to back, nothing after them

Checks on parsing, in order: magic, version (a newer version is refused as such, and so are the
float-numerics files of version 1, by name), header length, header CRC, field ranges, numerics
version, payload length (truncation / trailing bytes), payload CRC.
Every failure raises `CodecError` with a one-line message.

Version history: 1 (float tables: a file decoded only in the environment that wrote it);
2 adds the numerics byte and codes with the exact fixed-point model (numerics 1).
"""

import dataclasses
import struct
import zlib
from typing import Optional, Tuple, Union

MAGIC = b"L3CJ"
FORMAT_VERSION = 2
NUMERICS_VERSIONS = (1,)     # numerics this version of l3c-jax decodes
FINGERPRINT_BYTES = 16
MAX_SIDE = 1 << 20           # refuse absurd dimensions before allocating anything
MAX_PIXELS = 1 << 31
MAX_STREAMS = 1 << 20

MODE_CODES = {"RGB": 1, "L": 2, "RGBA": 3, "LA": 4, "P": 5, "1": 6}
MODES_BY_CODE = {v: k for k, v in MODE_CODES.items()}

# Component kinds: how one plane group of the image is coded.
COMPONENT_RGB = 1       # 3 channels with the model (latents, R, G | R, B | R, G)
COMPONENT_GRAY = 2      # 1 channel with the model: replicated to RGB for the network, R coded
COMPONENT_CONSTANT = 3  # 1 channel, every pixel equal to the component's value; no bits

_PREFIX = struct.Struct("<4sBI")  # magic, version, body length
_CRC = struct.Struct("<I")


class CodecError(ValueError):
  """A file cannot be decoded (corrupt, truncated, wrong model, unsupported); one-line message."""


@dataclasses.dataclass(frozen=True)
class Header:
  """Everything the decoder needs besides the model and the substreams.

  Attributes:
    fingerprint: FINGERPRINT_BYTES of the encoding model's fingerprint.
    numerics: the numerics version the tables were computed with.
    mode: image mode (a key of MODE_CODES).
    height, width: image size in pixels.
    tile_size: tiles are tile_size x tile_size (smaller at the right / bottom border).
    pad_h, pad_w: bottom / right padding of the last tile row / column (< 2^S).
    pixel_crc32: CRC32 of the decoded pixel array's bytes.
    components: ((kind, value), ...) in coding order.
    palette: palette bytes for mode 'P', else None.
    transparency: None, int or bytes (mode 'P').
    stream_lengths: byte length of each substream, in coding order.
    payload_crc32: CRC32 of the concatenated substreams.
  """
  fingerprint: bytes
  mode: str
  height: int
  width: int
  tile_size: int
  pad_h: int
  pad_w: int
  pixel_crc32: int
  components: Tuple[Tuple[int, int], ...]
  palette: Optional[bytes]
  transparency: Optional[Union[int, bytes]]
  stream_lengths: Tuple[int, ...]
  payload_crc32: int
  numerics: int = NUMERICS_VERSIONS[-1]


def crc32(data) -> int:
  return zlib.crc32(data) & 0xFFFFFFFF


def _body(h: Header) -> bytes:
  out = bytearray()
  if len(h.fingerprint) != FINGERPRINT_BYTES:
    raise ValueError("fingerprint must have 16 bytes")
  out += h.fingerprint
  out += struct.pack("<B", h.numerics)
  out += struct.pack("<BIIIBBI", MODE_CODES[h.mode], h.height, h.width, h.tile_size,
                     h.pad_h, h.pad_w, h.pixel_crc32)
  out += struct.pack("<B", len(h.components))
  for kind, value in h.components:
    out += struct.pack("<BB", kind, value)
  palette = h.palette or b""
  out += struct.pack("<H", len(palette)) + palette
  t = h.transparency
  if t is None:
    out += struct.pack("<B", 0)
  elif isinstance(t, int):
    out += struct.pack("<BH", 1, t)
  else:
    out += struct.pack("<BH", 2, len(t)) + bytes(t)
  out += struct.pack("<I", len(h.stream_lengths))
  out += struct.pack(f"<{len(h.stream_lengths)}I", *h.stream_lengths)
  out += struct.pack("<I", h.payload_crc32)
  return bytes(out)


def pack(header: Header, streams) -> bytes:
  """Serializes header + substreams. `header.stream_lengths` / `payload_crc32` are filled in."""
  streams = [bytes(s) for s in streams]
  payload = b"".join(streams)
  header = dataclasses.replace(header, stream_lengths=tuple(len(s) for s in streams),
                               payload_crc32=crc32(payload))
  body = _body(header)
  head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body)) + body
  return head + _CRC.pack(crc32(head)) + payload


def header_size(header: Header) -> int:
  """Bytes of everything that is not a substream (the container overhead)."""
  return _PREFIX.size + len(_body(header)) + _CRC.size


class _Reader:
  """Bounds-checked little-endian reader over the header body."""

  def __init__(self, data: bytes):
    self.data, self.pos = data, 0

  def take(self, n: int) -> bytes:
    if self.pos + n > len(self.data):
      raise CodecError("corrupt header (fields run past its end)")
    out = self.data[self.pos:self.pos + n]
    self.pos += n
    return out

  def unpack(self, fmt: str):
    s = struct.Struct("<" + fmt)
    return s.unpack(self.take(s.size))


def unpack(data: bytes) -> Tuple[Header, Tuple[bytes, ...]]:
  """Parses and checks a file.

  Returns:
    (header, substreams).
  Raises:
    CodecError: not an l3c-jax file, newer/unknown version, truncated, corrupt.
  """
  data = bytes(data)
  if len(data) < _PREFIX.size or data[:4] != MAGIC:
    if len(data) < 4 and MAGIC.startswith(data):
      raise CodecError("truncated file (no complete header)")
    raise CodecError("not an l3c-jax file (bad magic bytes)")
  _, version, body_len = _PREFIX.unpack_from(data)
  if version > FORMAT_VERSION:
    raise CodecError(f"file format version {version} is newer than this l3c-jax supports "
                     f"({FORMAT_VERSION}); upgrade l3c-jax")
  if version == 1:
    raise CodecError(f"file format version 1 (float numerics, decodable only on the machine and "
                     f"jax version that wrote it) is not supported by this l3c-jax (format "
                     f"version {FORMAT_VERSION}); decode it with l3c-jax 0.1 where it was "
                     f"written, then compress it again")
  if version != FORMAT_VERSION:
    raise CodecError(f"unknown file format version {version}")
  end = _PREFIX.size + body_len
  if end + _CRC.size > len(data):
    raise CodecError("truncated file (header incomplete)")
  (stored_crc,) = _CRC.unpack_from(data, end)
  if crc32(data[:end]) != stored_crc:
    raise CodecError("corrupt file (header checksum mismatch)")
  header = _parse_body(data[_PREFIX.size:end])
  payload = data[end + _CRC.size:]
  total = sum(header.stream_lengths)
  if len(payload) < total:
    raise CodecError(f"truncated file ({len(payload)} of {total} payload bytes)")
  if len(payload) > total:
    raise CodecError(f"corrupt file ({len(payload) - total} unexpected bytes after the data)")
  if crc32(payload) != header.payload_crc32:
    raise CodecError("corrupt file (data checksum mismatch)")
  streams, pos = [], 0
  for n in header.stream_lengths:
    streams.append(payload[pos:pos + n])
    pos += n
  return header, tuple(streams)


def _parse_body(body: bytes) -> Header:
  r = _Reader(body)
  fingerprint = r.take(FINGERPRINT_BYTES)
  (numerics,) = r.unpack("B")
  if numerics not in NUMERICS_VERSIONS:
    raise CodecError(f"file needs numerics version {numerics}; this l3c-jax computes "
                     f"{', '.join(map(str, NUMERICS_VERSIONS))} (upgrade l3c-jax)")
  mode_code, height, width, tile_size, pad_h, pad_w, pixel_crc = r.unpack("BIIIBBI")
  if mode_code not in MODES_BY_CODE:
    raise CodecError(f"corrupt header (unknown image mode code {mode_code})")
  if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
    raise CodecError(f"corrupt header (implausible image size {height}x{width})")
  if tile_size < 1:
    raise CodecError("corrupt header (tile size 0)")
  (num_components,) = r.unpack("B")
  components = tuple(tuple(r.unpack("BB")) for _ in range(num_components))
  for kind, _ in components:
    if kind not in (COMPONENT_RGB, COMPONENT_GRAY, COMPONENT_CONSTANT):
      raise CodecError(f"corrupt header (unknown component kind {kind})")
  (palette_len,) = r.unpack("H")
  palette = r.take(palette_len) or None
  (t_kind,) = r.unpack("B")
  if t_kind == 0:
    transparency = None
  elif t_kind == 1:
    (transparency,) = r.unpack("H")
  elif t_kind == 2:
    (t_len,) = r.unpack("H")
    transparency = r.take(t_len)
  else:
    raise CodecError(f"corrupt header (unknown transparency kind {t_kind})")
  (num_streams,) = r.unpack("I")
  if num_streams > MAX_STREAMS:
    raise CodecError(f"corrupt header ({num_streams} substreams)")
  lengths = r.unpack(f"{num_streams}I") if num_streams else ()
  (payload_crc,) = r.unpack("I")
  if r.pos != len(body):
    raise CodecError("corrupt header (unexpected bytes at its end)")
  return Header(fingerprint=fingerprint, mode=MODES_BY_CODE[mode_code], height=height,
                width=width, tile_size=tile_size, pad_h=pad_h, pad_w=pad_w,
                pixel_crc32=pixel_crc, components=components, palette=palette,
                transparency=transparency, stream_lengths=tuple(lengths),
                payload_crc32=payload_crc, numerics=numerics)
