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
                   1  method (METHOD_*): the model, or an embedded classical stream
                   1  image mode code (MODE_CODES)
                   4  height, 4 width (pixels, unpadded)
                   4  tile size (pixels; a multiple of 2^S; 0 for the classical methods)
                   1  bottom padding, 1 right padding of the last tile row / column
                   4  content CRC32: of the mode, palette, transparency, metadata and the
                      decoded pixel bytes (`content_crc32`)
                   1  number of components; per component 1 kind (COMPONENT_*) + 1 value
                   2  palette length P, then P palette bytes (mode 'P' only)
                   1  transparency kind (0 none, 1 index, 2 per-index alpha), then
                      2 bytes index, or 2 bytes length T + T alpha bytes
                   2  number of metadata records M; per record 4 bytes PNG chunk type
                      (iCCP, eXIf, tEXt, ...) + 4 bytes length D + D bytes chunk data
                   4  number of coded tiles T, then T x 4 CRC32s of each tile's decoded
                      pixels (so a damaged or forged tile is refused when it is decoded,
                      not after the whole image)
                   4  number of substreams N, then N x 4 substream lengths (bytes)
                   4  CRC32 of the payload (all substreams)
  9 + B   4     CRC32 of bytes [0, 9 + B)
  ...           payload: the N substreams back to back, nothing after them

Version 2 files (l3c-jax 0.2: no method byte, metadata records or tile CRCs; the content CRC
covers the pixel bytes alone) and version 3 files (pixel steps coded with whole tables) are still
read.

Checks on parsing, in order: magic, version (a newer version is refused as such, and so are the
float-numerics files of version 1, by name), header length, header CRC, field ranges, numerics
version, payload length (truncation / trailing bytes), payload CRC.
Every failure raises `CodecError` with a one-line message.

Version history: 1 (float tables: a file decoded only in the environment that wrote it);
2 adds the numerics byte and codes with the exact fixed-point model (numerics 1); 3 adds the
method byte (embedded PNG / WebP streams for images the model codes badly), metadata records,
per-tile CRCs, and a content CRC that also covers mode, palette, transparency and metadata;
4 window-codes the pixel steps (`coding.exact_tables` "Window coding", `coding.codec`
BLOCK_ROWS: the same intervals for symbols near the mixture's centre, escapes coded twice; the
decoder builds about a quarter of the table entries); the container is unchanged.
"""

import dataclasses
import struct
import zlib
from typing import Optional, Tuple, Union

MAGIC = b"L3CJ"
FORMAT_VERSION = 4
NUMERICS_VERSIONS = (1,)     # numerics this version of l3c-jax decodes
FINGERPRINT_BYTES = 16
MAX_SIDE = 1 << 20           # refuse absurd dimensions before allocating anything
MAX_PIXELS = 1 << 31
MAX_STREAMS = 1 << 20
MAX_METADATA_RECORDS = 1 << 12

# How the pixels are coded.
METHOD_MODEL = 0  # the model, component by component, tile by tile (`coding.codec`)
METHOD_PNG = 1    # one substream: a PNG file of the image (`coding.embedded`)
METHOD_WEBP = 2   # one substream: a lossless WebP file of the image (`coding.embedded`)
READ_VERSIONS = (2, 3, 4)   # format versions this l3c-jax decodes (2: no method, metadata,
                            # tile CRCs; written by l3c-jax 0.2; 3: whole-table pixel steps)
METHOD_NAMES = {METHOD_MODEL: "model", METHOD_PNG: "png", METHOD_WEBP: "webp"}

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
    tile_size: tiles are tile_size x tile_size (smaller at the right / bottom border); 0 for
      the classical methods.
    pad_h, pad_w: bottom / right padding of the last tile row / column (< 2^S).
    content_crc32: `content_crc32` of the decoded image.
    components: ((kind, value), ...) in coding order (empty for the classical methods).
    palette: palette bytes for mode 'P', else None.
    transparency: None, int or bytes (mode 'P').
    stream_lengths: byte length of each substream, in coding order.
    payload_crc32: CRC32 of the concatenated substreams.
    method: METHOD_MODEL, METHOD_PNG or METHOD_WEBP.
    metadata: ((PNG chunk type, chunk data), ...), e.g. ((b"iCCP", ...), (b"eXIf", ...)).
    tile_crc32s: CRC32 of each coded tile's pixels, in coding order (components, then tiles).
    version: the format version of a parsed file; in version 2 files `content_crc32` is the
      CRC32 of the pixel bytes alone, and there are no metadata or tile CRCs.
  """
  fingerprint: bytes
  mode: str
  height: int
  width: int
  tile_size: int
  pad_h: int
  pad_w: int
  content_crc32: int
  components: Tuple[Tuple[int, int], ...]
  palette: Optional[bytes]
  transparency: Optional[Union[int, bytes]]
  stream_lengths: Tuple[int, ...]
  payload_crc32: int
  numerics: int = NUMERICS_VERSIONS[-1]
  method: int = METHOD_MODEL
  metadata: Tuple[Tuple[bytes, bytes], ...] = ()
  tile_crc32s: Tuple[int, ...] = ()
  version: int = FORMAT_VERSION  # pack() always writes FORMAT_VERSION


def crc32(data, start: int = 0) -> int:
  return zlib.crc32(data, start) & 0xFFFFFFFF


def _transparency_bytes(t) -> bytes:
  if t is None:
    return struct.pack("<B", 0)
  if isinstance(t, int):
    return struct.pack("<BH", 1, t)
  return struct.pack("<BH", 2, len(t)) + bytes(t)


def _metadata_bytes(metadata) -> bytes:
  out = bytearray(struct.pack("<H", len(metadata)))
  for kind, data in metadata:
    if len(kind) != 4:
      raise ValueError(f"metadata record types are 4-byte PNG chunk types, got {kind!r}")
    out += bytes(kind) + struct.pack("<I", len(data)) + bytes(data)
  return bytes(out)


def content_crc32(mode: str, palette: Optional[bytes], transparency, metadata,
                  pixels: bytes) -> int:
  """CRC32 of everything the decoder returns: mode, palette, transparency, metadata records
  and the pixel bytes (C order). A header forged with its checksum recomputed cannot change
  any of them without the decoder noticing."""
  fields = (struct.pack("<B", MODE_CODES[mode]) + struct.pack("<H", len(palette or b""))
            + (palette or b"") + _transparency_bytes(transparency) + _metadata_bytes(metadata))
  return crc32(pixels, crc32(fields))


def _body(h: Header) -> bytes:
  out = bytearray()
  if len(h.fingerprint) != FINGERPRINT_BYTES:
    raise ValueError("fingerprint must have 16 bytes")
  out += h.fingerprint
  out += struct.pack("<BB", h.numerics, h.method)
  out += struct.pack("<BIIIBBI", MODE_CODES[h.mode], h.height, h.width, h.tile_size,
                     h.pad_h, h.pad_w, h.content_crc32)
  out += struct.pack("<B", len(h.components))
  for kind, value in h.components:
    out += struct.pack("<BB", kind, value)
  palette = h.palette or b""
  out += struct.pack("<H", len(palette)) + palette
  out += _transparency_bytes(h.transparency)
  out += _metadata_bytes(h.metadata)
  out += struct.pack("<I", len(h.tile_crc32s))
  out += struct.pack(f"<{len(h.tile_crc32s)}I", *h.tile_crc32s)
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
  if version not in READ_VERSIONS:
    raise CodecError(f"unknown file format version {version}")
  end = _PREFIX.size + body_len
  if end + _CRC.size > len(data):
    raise CodecError("truncated file (header incomplete)")
  (stored_crc,) = _CRC.unpack_from(data, end)
  if crc32(data[:end]) != stored_crc:
    raise CodecError("corrupt file (header checksum mismatch)")
  header = _parse_body(data[_PREFIX.size:end], version)
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


def _parse_body(body: bytes, version: int) -> Header:
  r = _Reader(body)
  fingerprint = r.take(FINGERPRINT_BYTES)
  if version == 2:  # no method byte: always the model
    (numerics,), method = r.unpack("B"), METHOD_MODEL
  else:
    numerics, method = r.unpack("BB")
  if numerics not in NUMERICS_VERSIONS:
    raise CodecError(f"file needs numerics version {numerics}; this l3c-jax computes "
                     f"{', '.join(map(str, NUMERICS_VERSIONS))} (upgrade l3c-jax)")
  if method not in METHOD_NAMES:
    raise CodecError(f"corrupt header (unknown coding method {method})")
  mode_code, height, width, tile_size, pad_h, pad_w, content_crc = r.unpack("BIIIBBI")
  if mode_code not in MODES_BY_CODE:
    raise CodecError(f"corrupt header (unknown image mode code {mode_code})")
  if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
    raise CodecError(f"corrupt header (implausible image size {height}x{width})")
  if (tile_size < 1) if method == METHOD_MODEL else tile_size:
    raise CodecError(f"corrupt header (tile size {tile_size})")
  (num_components,) = r.unpack("B")
  components = tuple(tuple(r.unpack("BB")) for _ in range(num_components))
  for kind, _ in components:
    if kind not in (COMPONENT_RGB, COMPONENT_GRAY, COMPONENT_CONSTANT):
      raise CodecError(f"corrupt header (unknown component kind {kind})")
  (palette_len,) = r.unpack("H")
  palette = r.take(palette_len) or None
  if palette is not None and (palette_len % 3 or palette_len > 768):
    raise CodecError(f"corrupt header (palette of {palette_len} bytes)")
  (t_kind,) = r.unpack("B")
  if t_kind == 0:
    transparency = None
  elif t_kind == 1:
    (transparency,) = r.unpack("H")
  elif t_kind == 2:
    (t_len,) = r.unpack("H")
    transparency = r.take(t_len)
    if t_len > 256:
      raise CodecError(f"corrupt header ({t_len} transparency entries)")
  else:
    raise CodecError(f"corrupt header (unknown transparency kind {t_kind})")
  (num_records,) = r.unpack("H") if version > 2 else (0,)
  if num_records > MAX_METADATA_RECORDS:
    raise CodecError(f"corrupt header ({num_records} metadata records)")
  metadata = []
  for _ in range(num_records):
    kind, size = r.unpack("4sI")
    if not kind.isalpha():
      raise CodecError(f"corrupt header (metadata record type {kind!r})")
    metadata.append((kind, r.take(size)))
  (num_tiles,) = r.unpack("I") if version > 2 else (0,)
  if num_tiles > MAX_STREAMS:
    raise CodecError(f"corrupt header ({num_tiles} tiles)")
  tile_crcs = r.unpack(f"{num_tiles}I") if num_tiles else ()
  (num_streams,) = r.unpack("I")
  if num_streams > MAX_STREAMS:
    raise CodecError(f"corrupt header ({num_streams} substreams)")
  lengths = r.unpack(f"{num_streams}I") if num_streams else ()
  (payload_crc,) = r.unpack("I")
  if r.pos != len(body):
    raise CodecError("corrupt header (unexpected bytes at its end)")
  return Header(fingerprint=fingerprint, mode=MODES_BY_CODE[mode_code], height=height,
                width=width, tile_size=tile_size, pad_h=pad_h, pad_w=pad_w,
                content_crc32=content_crc, components=components, palette=palette,
                transparency=transparency, stream_lengths=tuple(lengths),
                payload_crc32=payload_crc, numerics=numerics, method=method,
                metadata=tuple(metadata), tile_crc32s=tuple(tile_crcs), version=version)
