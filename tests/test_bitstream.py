"""The .l3c container (coding.bitstream): round trip and rejection of bad files."""

import dataclasses
import struct

import pytest

from l3c_jax.coding import bitstream
from l3c_jax.coding.bitstream import CodecError


def _header(**kw):
  h = bitstream.Header(
      fingerprint=bytes(range(16)), mode="P", height=13, width=19, tile_size=1024, pad_h=3,
      pad_w=5, content_crc32=0xDEADBEEF,
      components=((bitstream.COMPONENT_RGB, 0),), palette=bytes(range(30)),
      transparency=bytes([0, 255, 7]), stream_lengths=(), payload_crc32=0,
      metadata=((b"iCCP", b"profile\0\0xyz"), (b"tEXt", b"Title\0t"), (b"eXIf", b"")),
      tile_crc32s=(1, 0xFFFFFFFF))
  return dataclasses.replace(h, **kw)


STREAMS = (b"abcd" * 3, b"", b"\x00\x01\x02\x03")


def test_bitstream_roundtrip_keeps_every_field():
  for transparency in (None, 7, bytes([1, 2, 3])):
    h = _header(transparency=transparency)
    data = bitstream.pack(h, STREAMS)
    got, streams = bitstream.unpack(data)
    assert streams == STREAMS
    assert got == dataclasses.replace(h, stream_lengths=(12, 0, 4),
                                      payload_crc32=bitstream.crc32(b"".join(STREAMS)))
    assert bitstream.header_size(got) == len(data) - 16


def test_bitstream_rejects_wrong_magic():
  data = bytearray(bitstream.pack(_header(), STREAMS))
  data[0:4] = b"\x89PNG"
  with pytest.raises(CodecError, match="not an l3c-jax file"):
    bitstream.unpack(bytes(data))


def test_bitstream_rejects_newer_format_version():
  data = bytearray(bitstream.pack(_header(), STREAMS))
  data[4] = bitstream.FORMAT_VERSION + 1
  with pytest.raises(CodecError, match="newer than this l3c-jax supports"):
    bitstream.unpack(bytes(data))


def test_bitstream_rejects_every_truncation():
  data = bitstream.pack(_header(), STREAMS)
  for n in range(len(data)):
    with pytest.raises(CodecError):
      bitstream.unpack(data[:n])


def test_bitstream_rejects_trailing_bytes():
  data = bitstream.pack(_header(), STREAMS)
  with pytest.raises(CodecError, match="unexpected bytes"):
    bitstream.unpack(data + b"\x00")


def test_bitstream_detects_corruption_of_any_byte():
  data = bitstream.pack(_header(), STREAMS)
  for i in range(len(data)):
    bad = bytearray(data)
    bad[i] ^= 0x10
    with pytest.raises(CodecError):
      bitstream.unpack(bytes(bad))


def test_bitstream_rejects_implausible_fields_even_with_valid_checksum():
  def forged(body_edit):
    data = bitstream.pack(_header(), STREAMS)
    (body_len,) = struct.unpack_from("<I", data, 5)
    body = bytearray(data[9:9 + body_len])
    body_edit(body)
    head = data[:9] + bytes(body)
    return head + struct.pack("<I", bitstream.crc32(head)) + data[9 + body_len + 4:]

  # body: 16 fingerprint, numerics, method, mode, height, ...
  def huge_height(body):
    body[19:23] = struct.pack("<I", 1 << 30)

  def bad_mode(body):
    body[18] = 99

  def bad_method(body):
    body[17] = 9

  def future_numerics(body):
    body[16] = 7

  with pytest.raises(CodecError, match="implausible image size"):
    bitstream.unpack(forged(huge_height))
  with pytest.raises(CodecError, match="mode code"):
    bitstream.unpack(forged(bad_mode))
  with pytest.raises(CodecError, match="unknown coding method 9"):
    bitstream.unpack(forged(bad_method))
  with pytest.raises(CodecError, match="numerics version 7; this l3c-jax computes 1"):
    bitstream.unpack(forged(future_numerics))


def test_float_numerics_files_of_format_1_are_refused_by_name():
  """Format 1 files were coded with float tables that only their own environment reproduces:
  refused with the versions named, not as 'corrupt'."""
  data = bytearray(bitstream.pack(_header(), STREAMS))
  data[4] = 1
  with pytest.raises(CodecError, match=r"format version 1 \(float numerics.*format version "
                                       + str(bitstream.FORMAT_VERSION)):
    bitstream.unpack(bytes(data))
