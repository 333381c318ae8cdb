"""Range coding of symbol streams with per-symbol integer tables (the only constriction user).

We use constriction's `queue.RangeEncoder` / `RangeDecoder` (24-bit probability precision,
32-bit words) with the `Categorical(perfect=False)` family. The tables handed in are the
integer frequencies q_i >= 1 with sum_i q_i = 2^24 built by `coding.tables`, passed as the
float32 values c_i = q_i - 1 (exact integers below 2^24). Then sum_i c_i = 2^24 - A, so
constriction's lazy categorical model scales by exactly 1.0 and codes symbol i with exactly
q_i / 2^24: the coded model is defined by our integers, not by constriction's float details.

A stream is a sequence of `encode` calls (chunks, in decoding order) turned into bytes
(little-endian 32-bit words). The decoder must be given the same tables in the same order.
Any failure inside constriction while decoding becomes a `StreamError`.
"""

import constriction
import numpy as np

PRECISION_BITS = 24  # constriction's Python coders: <u32 words, u64 state, 24-bit precision>
_FAMILY = constriction.stream.model.Categorical(perfect=False)


class StreamError(ValueError):
  """A stream could not be decoded with the given tables (corrupt data or wrong model)."""


def _check_table(symbols_or_n, table: np.ndarray):
  if table.dtype != np.float32 or table.ndim != 2 or not table.flags.c_contiguous:
    raise ValueError("tables must be C-contiguous float32 [n, A] arrays")
  n = symbols_or_n if isinstance(symbols_or_n, int) else len(symbols_or_n)
  if table.shape[0] != n:
    raise ValueError(f"{n} symbols but {table.shape[0]} table rows")


class StreamEncoder:
  """Appends chunks of symbols, each with its own table rows, to one range-coded stream."""

  def __init__(self):
    self._enc = constriction.stream.queue.RangeEncoder()

  def encode(self, symbols: np.ndarray, table: np.ndarray) -> None:
    """Encodes symbols[i] with table row i.

    Args:
      symbols: [n] integers in [0, A).
      table: [n, A] float32, row i holds q - 1 of symbol i's integer frequencies.
    """
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    _check_table(symbols, table)
    if len(symbols):
      self._enc.encode(symbols, _FAMILY, table)

  def num_bits(self) -> int:
    return int(self._enc.num_bits())

  def finish(self) -> bytes:
    """The compressed stream (a multiple of 4 bytes)."""
    return self._enc.get_compressed().astype("<u4").tobytes()


class StreamDecoder:
  """Decodes chunks from one stream, given the same tables in the same order as encoding."""

  def __init__(self, data: bytes):
    if len(data) % 4:
      raise StreamError(f"stream length {len(data)} is not a multiple of 4 bytes")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    self._dec = constriction.stream.queue.RangeDecoder(words)

  def decode(self, table: np.ndarray) -> np.ndarray:
    """Decodes len(table) symbols -> [n] int32."""
    _check_table(table.shape[0], table)
    if table.shape[0] == 0:
      return np.zeros((0,), np.int32)
    try:
      out = self._dec.decode(_FAMILY, table)
    # constriction raises AssertionError on invalid data; a Rust panic would surface as
    # pyo3's PanicException, which derives from BaseException.
    except BaseException as e:
      if isinstance(e, (KeyboardInterrupt, SystemExit)):
        raise
      raise StreamError(f"invalid compressed data ({type(e).__name__})") from None
    return np.asarray(out, dtype=np.int32)


def encode_stream(symbols: np.ndarray, table: np.ndarray) -> bytes:
  """One-shot helper: the stream of `symbols` coded with `table` rows."""
  enc = StreamEncoder()
  enc.encode(symbols, table)
  return enc.finish()


def decode_stream(data: bytes, table: np.ndarray) -> np.ndarray:
  """One-shot helper: decodes len(table) symbols from `data`."""
  return StreamDecoder(data).decode(table)
