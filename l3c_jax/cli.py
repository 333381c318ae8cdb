"""Command line: `l3c-jax compress | decompress | eval` (also `python -m l3c_jax`).

  l3c-jax compress IN... [-o OUT] [-f] [-q | -v] [--model DIR] [--tile_size N]
                  [--method auto|model|png|webp] [--strip_metadata]
      Each IN to IN.l3c (several inputs per call, like gzip / cwebp); -o OUT names the output of
      exactly one input. '-' is standard input (with -o) or, as OUT, standard output. Metadata
      (ICC profile, EXIF, PNG text, ...) is kept unless --strip_metadata.
  l3c-jax decompress IN... [-o OUT] [-f] [-q | -v] [--model DIR] [--strip_metadata]
      Each IN to IN without ".l3c" as PNG (a.png.l3c -> a.png; a.jpg.l3c -> a.png). With -o the
      format follows OUT's extension: .png, .webp (lossless), .tif/.tiff, .bmp, .ppm/.pgm/.pbm/
      .pnm, each only for the modes it stores exactly (`data.images.encode_image_file`); lossy
      (.jpg, ...) and unknown extensions are refused. '-o -' writes PNG to standard output.
      Without --model each file is decoded with the shipped model its header names: this
      release's default or an earlier release's (`model_io.shipped_model_for`).
  l3c-jax eval DIR_OR_FILES... --json PATH [--model DIR] [--tile_size N] [--no_warmup] [-q | -v]
                  [--method model|auto|png|webp]
      Codes every image for real, checks the round trips, writes a CompressAI-style JSON.
  l3c-jax --version

Everything that can be checked is checked before the model is loaded: the arguments (tile size
an integer multiple of 8 from 64), the inputs (exist, are files, are readable), the outputs
(their directory exists and is writable; an existing file needs -f). Outputs are written
atomically (`model_io.atomic_write`), so a failure leaves no partial file; binary data is never
written to a terminal. Errors are one line on stderr, `l3c-jax: error: ...`; with several inputs
the others are still coded and the exit status is 1 at the end if any failed (2 for usage
errors). A progress bar (stderr, only when it is a terminal, after 2 s) follows the coding of
tiles and the images of `eval`; off a terminal `eval` prints one plain line per image; -q prints
nothing but errors. Backend log noise (jax's "a GPU / TPU may be present" warnings, absl, XLA's
C++ logs) is silenced in the command line only. Compiled XLA code is cached on disk between runs
(`l3c_jax.compile_cache`, shared with training; L3C_JAX_CACHE_DIR=off disables).
"""

import argparse
import contextlib
import io
import logging
import os
import sys
import time
from typing import BinaryIO, Callable, List, Optional, Tuple

PROG = "l3c-jax"
STDIO = "-"
# codec.DEFAULT_TILE_SIZE, repeated so that --help does not import jax (tests/test_cli.py checks
# they agree).
DEFAULT_TILE_SIZE = 1024
# Tiles must hold whole 8 x 8 blocks (2^S for the paper's S=3; a model with larger 2^S is
# checked once loaded). Below 64 pixels the tiles' coarsest scale (8 x 8 for S=3) would be
# mostly padding and the per-tile overhead large; refused rather than silently rounded.
TILE_MULTIPLE = 8
MIN_TILE_SIZE = 64
MAX_TILE_SIZE = 1 << 20  # coding.bitstream.MAX_SIDE: a larger tile is the whole image anyway
# Seconds of work after which a progress bar appears (shorter runs stay silent).
PROGRESS_DELAY_S = 2.0
JPEG_NOTE = ("JPEG input: the .l3c file stores the decoded pixels losslessly and is usually "
             "larger than the JPEG")


class CliError(Exception):
  """A user-facing error (printed as one line)."""


class _UsageError(Exception):
  """A usage error found after parsing (exit status 2, like argparse's)."""


class _Parser(argparse.ArgumentParser):
  """argparse with one-line usage errors (`l3c-jax: error: ...`, exit status 2)."""

  def error(self, message):
    self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _tile_size(text: str) -> int:
  """argparse type of --tile_size: an integer multiple of 8 in [64, 2^20]."""
  try:
    n = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"tile size must be an integer, got {text!r}") from None
  if n < MIN_TILE_SIZE or n > MAX_TILE_SIZE or n % TILE_MULTIPLE:
    raise argparse.ArgumentTypeError(
        f"tile size must be a multiple of {TILE_MULTIPLE} from {MIN_TILE_SIZE} to "
        f"{MAX_TILE_SIZE} pixels, got {n}")
  return n


def _parser() -> Tuple[argparse.ArgumentParser, dict]:
  """The parser and its sub-parsers by command name."""
  from l3c_jax import __version__  # pylint: disable=g-import-not-at-top  # no jax import
  common = _Parser(add_help=False)
  common.add_argument("--model", metavar="DIR", default=None,
                      help="exported model directory or training workdir "
                           "(default: the shipped default model)")
  talk = common.add_mutually_exclusive_group()
  talk.add_argument("-q", "--quiet", action="store_true",
                    help="print nothing but errors: no summary line, note or progress bar "
                         "(default: off)")
  talk.add_argument("-v", "--verbose", action="store_true",
                    help="also print per-scale theoretical vs written bits and stage times "
                         "(default: off)")
  tiles = _Parser(add_help=False)
  tiles.add_argument("--tile_size", type=_tile_size, default=DEFAULT_TILE_SIZE, metavar="N",
                     help=f"code images in independent tiles of N x N pixels, N a multiple of "
                          f"{TILE_MULTIPLE} from {MIN_TILE_SIZE} (default: {DEFAULT_TILE_SIZE})")
  methods = ("auto", "model", "png", "webp")
  strip = _Parser(add_help=False)
  strip.add_argument("--strip_metadata", action="store_true",
                     help="drop the ICC profile, EXIF, text and other metadata chunks "
                          "(default: keep them)")
  force = _Parser(add_help=False)
  force.add_argument("-f", "--force", action="store_true",
                     help="overwrite outputs that exist (default: refuse)")

  p = _Parser(prog=PROG, description="Lossless image compression with L3C.")
  p.add_argument("--version", action="version", version=f"{PROG} {__version__}",
                 help="print the version and exit")
  sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
  c = sub.add_parser("compress", parents=[common, tiles, strip, force],
                     help="images -> .l3c files",
                     description="Compress each image IN to IN.l3c (or to OUT with -o).")
  c.add_argument("--method", choices=methods, default="auto",
                 help="how the pixels are coded: auto = the smaller of the model and PNG, and "
                      "few-colour images (palette, bilevel, <= 256 colours) as PNG or WebP "
                      "without the model; model; png or webp = an embedded lossless stream "
                      "(default: auto)")
  c.add_argument("inputs", metavar="IN", nargs="+",
                 help="image file(s) in any format Pillow reads (PNG, JPEG, WebP, TIFF, BMP, "
                      "PPM, ...); '-' reads standard input (needs -o)")
  c.add_argument("-o", "--output", metavar="OUT", default=None,
                 help="output file for a single IN; '-' writes to standard output "
                      "(default: IN.l3c)")
  d = sub.add_parser("decompress", parents=[common, strip, force], help=".l3c files -> images",
                     description="Decompress each .l3c file IN to IN without .l3c, as PNG (or "
                                 "to OUT with -o, in the format of its extension).")
  d.add_argument("inputs", metavar="IN", nargs="+",
                 help=".l3c file(s); '-' reads standard input (needs -o)")
  d.add_argument("-o", "--output", metavar="OUT", default=None,
                 help="output file for a single IN, format by extension: .png, .webp "
                      "(lossless), .tif/.tiff, .bmp, .ppm/.pgm/.pbm/.pnm, each for the image "
                      "modes it stores exactly; '-' writes PNG to standard output "
                      "(default: IN without .l3c, as PNG)")
  e = sub.add_parser("eval", parents=[common, tiles],
                     help="code images for real and report bpsp and times as JSON",
                     description="Code every image for real, check the round trips and write "
                                 "a CompressAI-style JSON report.")
  e.add_argument("paths", metavar="DIR_OR_FILES", nargs="+",
                 help="image files and/or directories (their image files, not recursive)")
  e.add_argument("--json", required=True, metavar="PATH",
                 help="where to write the report (required; overwritten)")
  e.add_argument("--method", choices=methods, default="model",
                 help="as for compress; 'model' measures the model itself, 'auto' what "
                      "compress writes (default: model)")
  e.add_argument("--no_warmup", action="store_true",
                 help="do not compile before timing each new image shape (default: compile "
                      "first, so times exclude compiling)")
  return p, {"compress": c, "decompress": d, "eval": e}


def parse_args(argv: List[str]) -> argparse.Namespace:
  """Parses a command line; options may come between inputs (`compress a.png -f b.png`).

  Raises:
    SystemExit: --help / --version (0) or usage errors (2), after printing.
  """
  parser, commands = _parser()
  if argv and argv[0] in commands:
    # Intermixed: plain argparse takes one run of positionals, and would call the second input
    # of `compress a.png -o x.l3c b.png` unrecognized instead of reporting the -o misuse.
    args = commands[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args
  return parser.parse_args(argv)


def default_compressed_name(path: str) -> str:
  return path + ".l3c"


def default_decompressed_name(path: str) -> str:
  base = path[:-4] if path.lower().endswith(".l3c") else path
  stem, ext = os.path.splitext(base)
  if ext.lower() == ".png":
    return base
  return (stem if ext else base) + ".png"


def write_atomic(path: str, data: bytes, force: bool) -> None:
  """Writes atomically (see `model_io.atomic_write`).

  Raises:
    CliError: if `path` exists and not `force`.
  """
  from l3c_jax import model_io  # pylint: disable=g-import-not-at-top
  _check_output(path, force)
  model_io.atomic_write(path, data)


def _check_output(path: str, force: bool) -> None:
  if os.path.isdir(path):
    raise CliError(f"{path} is a directory")
  if os.path.exists(path) and not force:
    raise CliError(f"{path} exists (use -f to overwrite)")


def _check_input(path: str) -> None:
  """An input that can be read: exists, is a file (or a pipe / device), is readable."""
  if not os.path.exists(path):
    raise CliError(f"{path}: no such file")
  if os.path.isdir(path):
    raise CliError(f"{path} is a directory")
  if not os.access(path, os.R_OK):
    raise CliError(f"{path}: permission denied")


def _check_output_dir(path: str) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise CliError(f"cannot write {path}: directory {os.path.dirname(path) or '.'} does not "
                   "exist")
  if not os.access(directory, os.W_OK | os.X_OK):
    raise CliError(f"cannot write {path}: directory {os.path.dirname(path) or '.'} is not "
                   "writable")


def _display(path: str, stream: str) -> str:
  return f"<{stream}>" if path == STDIO else path


def _load_model(path: Optional[str]):
  from l3c_jax import model_io  # pylint: disable=g-import-not-at-top
  return model_io.load_model(path) if path else model_io.load_default_model()


def _print_verbose(stats, out, extra_times=None):
  keys = list(stats.actual_bits)  # the coding plan's groups, in coding order
  has_theory = bool(stats.theory_bits)
  out.write(f"  {'scale':<7}{'theory bits':>14}{'written bits':>14}{'overhead':>10}\n")
  for k in keys:
    actual = stats.actual_bits[k]
    if has_theory:
      theory = stats.theory_bits.get(k, float("nan"))
      over = (actual / theory - 1) * 100 if theory else float("nan")
      out.write(f"  {k:<7}{theory:>14.1f}{actual:>14.0f}{over:>9.3f}%\n")
    else:
      out.write(f"  {k:<7}{'-':>14}{actual:>14.0f}{'':>10}\n")
  out.write(f"  {'header':<7}{'':>14}{stats.header_bits:>14d}\n")
  total_theory = sum(stats.theory_bits.values()) if has_theory else None
  total = f"{total_theory:>14.1f}" if has_theory else f"{'-':>14}"
  out.write(f"  {'total':<7}{total}{stats.file_bits:>14d}\n")
  times = dict(stats.times_s)
  times.update(extra_times or {})
  order = ["read", "network", "tables", "coder", "estimate", "write", "total"]
  parts = [f"{k} {times[k]:.3f} s" for k in order if k in times]
  out.write("  time: " + ", ".join(parts) + "\n")


def _isatty(stream) -> bool:
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):  # no isatty, or closed
    return False


class _Console:
  """Where the user-facing output goes: result lines on `out` (on `err` when standard output
  carries the coded data), notes and progress on `err`; errors always, the rest unless quiet."""

  def __init__(self, out, err, quiet: bool):
    self.out, self.err, self.quiet = out, err, quiet
    # Progress bars redraw a line with carriage returns: only on a terminal.
    self.bars = not quiet and _isatty(err)

  def error(self, msg: str) -> None:
    self.err.write(f"{PROG}: error: {' '.join(str(msg).split())}\n")
    self.err.flush()

  def note(self, msg: str) -> None:
    if not self.quiet:
      self.err.write(f"{PROG}: note: {msg}\n")

  def result(self, text: str, data_on_stdout: bool = False) -> None:
    if not self.quiet:
      (self.err if data_on_stdout else self.out).write(text)

  @contextlib.contextmanager
  def tile_progress(self, desc: str):
    """Yields a codec `progress(done, total)` hook (pixels coded) drawing a bar (or None)."""
    if not self.bars:
      yield None
      return
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = None

    def update(done: int, total: int) -> None:
      nonlocal bar
      if bar is None:
        bar = tqdm(total=total, desc=desc, unit="px", unit_scale=True, file=self.err,
                   leave=False, delay=PROGRESS_DELAY_S, dynamic_ncols=True)
      bar.update(done - bar.n)

    try:
      yield update
    finally:
      if bar is not None:
        bar.close()

  @contextlib.contextmanager
  def image_progress(self, total: int):
    """Yields an `evaluate` progress(done, total, note) hook: a bar on a terminal, else one
    plain line per image (no carriage returns in logs), nothing when quiet."""
    if self.quiet:
      yield None
      return
    if not self.bars:
      def line(done: int, n: int, note: str) -> None:
        self.err.write(f"[{done}/{n}] {note}\n")
        self.err.flush()
      yield line
      return
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    with tqdm(total=total, desc="eval", unit="image", file=self.err, leave=False,
              delay=PROGRESS_DELAY_S, dynamic_ncols=True) as bar:
      def update(done: int, n: int, note: str) -> None:
        del n
        bar.set_postfix_str(note, refresh=False)
        bar.update(done - bar.n)
      yield update


def _user_errors():
  """Exception types whose message is shown as is (imports deferred to keep --help fast)."""
  from l3c_jax.coding.bitstream import CodecError  # pylint: disable=g-import-not-at-top
  from l3c_jax.data.images import ImageError  # pylint: disable=g-import-not-at-top
  from l3c_jax.model_io import ModelError  # pylint: disable=g-import-not-at-top
  return (CliError, CodecError, ImageError, ModelError)


def _message(e: BaseException) -> str:
  """The one-line message of an error (re-raises bugs when L3C_JAX_TRACEBACK is set)."""
  if isinstance(e, _user_errors()):
    return str(e)
  if isinstance(e, OSError):
    return f"{e.filename}: {e.strerror or e}" if e.filename else (e.strerror or str(e))
  if os.environ.get("L3C_JAX_TRACEBACK"):  # a bug: the traceback on request
    raise e
  return f"internal error ({type(e).__name__}: {e})"


def _plan_jobs(args, default_name: Callable[[str], str], console: _Console,
               binary_in: BinaryIO, binary_out: BinaryIO) -> Tuple[List[Tuple[str, str]], int]:
  """(input, output) pairs that passed the checks, and how many inputs failed them.

  Usage errors (-o with several inputs, '-' without -o, binary data from / to a terminal) raise; a
  missing input or an output that exists is that input's error, the others go on.
  """
  inputs = args.inputs
  if args.output is not None and len(inputs) != 1:
    raise _UsageError(f"-o/--output takes exactly one input, got {len(inputs)} (without -o "
                      "each input gets its own output name)")
  if STDIO in inputs and args.output is None:
    raise _UsageError("reading standard input ('-') needs -o OUT ('-o -' for standard output)")
  if args.output == STDIO and _isatty(binary_out):
    raise CliError("refusing to write binary data to a terminal; redirect standard output or "
                   "use -o FILE")
  if STDIO in inputs and _isatty(binary_in):  # would wait for typed bytes
    raise CliError("refusing to read binary data from a terminal; pipe or redirect standard "
                   "input")
  jobs, failed, planned = [], 0, set()
  for path in inputs:
    output = args.output if args.output is not None else default_name(path)
    try:
      if path != STDIO:
        _check_input(path)
      if output != STDIO:
        _check_output_dir(output)
        _check_output(output, args.force)
        key = os.path.abspath(output)
        if key in planned:
          raise CliError(f"{output} is also the output of an earlier input")
        if path != STDIO and os.path.exists(output) and os.path.samefile(path, output):
          raise CliError(f"{output} would overwrite its own input")
        planned.add(key)
      jobs.append((path, output))
    except CliError as e:
      console.error(e)
      failed += 1
  return jobs, failed


def _read_input(path: str, binary_in: BinaryIO) -> bytes:
  if path == STDIO:
    return binary_in.read()
  with open(path, "rb") as f:
    return f.read()


def _write_output(path: str, data: bytes, force: bool, binary_out: BinaryIO) -> None:
  if path == STDIO:
    binary_out.write(data)
    binary_out.flush()
  else:
    write_atomic(path, data, force)


def _run_jobs(args, jobs, failed: int, console: _Console, code_one, preload: bool = True
              ) -> int:
  """Loads the model once (unless not `preload`: code_one then gets None and picks its own)
  and codes every job, each failure one error line; exit status."""
  if not jobs:
    return 1
  model = _load_model(args.model) if preload else None
  tile_size = getattr(args, "tile_size", None)
  factor = model.config.padding_factor if model is not None else 1
  if tile_size is not None and tile_size % factor:
    raise CliError(f"tile size {tile_size} is not a multiple of this model's {factor} "
                   f"(2^{factor.bit_length() - 1} scales)")
  for path, output in jobs:
    try:
      code_one(model, path, output)
    except Exception as e:  # pylint: disable=broad-except  # one line each, then the next input
      msg = _message(e)
      console.error(msg if isinstance(e, (CliError, OSError)) else
                    f"{_display(path, 'stdin')}: {msg}")
      failed += 1
  return 1 if failed else 0


def _method_note(stats) -> str:
  """' (stored as png, ...)' when the file holds an embedded stream, not the model's coding."""
  from l3c_jax.coding import bitstream  # pylint: disable=g-import-not-at-top
  if stats.method == bitstream.METHOD_MODEL:
    return ""
  return f" (stored as {bitstream.METHOD_NAMES[stats.method]}, smaller than the model's coding)"


def _write_and_report(args, console: _Console, path: str, output: str, data: bytes,
                      binary_out, stats, t_read: float, summary: str) -> None:
  """Writes one job's output, then its summary line (and with -v the per-stage figures)."""
  t0 = time.perf_counter()
  _write_output(output, data, args.force, binary_out)
  t_write = time.perf_counter() - t0
  to_stdout = output == STDIO
  console.result(f"{_display(path, 'stdin')} -> {_display(output, 'stdout')}: {summary}\n",
                 to_stdout)
  if args.verbose:
    _print_verbose(stats, console.err if to_stdout else console.out,
                   {"read": t_read, "write": t_write})


def _compress(args, console: _Console, binary_in, binary_out) -> int:
  jobs, failed = _plan_jobs(args, default_compressed_name, console, binary_in, binary_out)

  def code_one(model, path, output):
    from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
    from l3c_jax.data import images  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    raw = _read_input(path, binary_in)
    image = images.read_image(io.BytesIO(raw), metadata=not args.strip_metadata)
    t_read = time.perf_counter() - t0
    if raw[:3] == b"\xff\xd8\xff":  # the JPEG SOI marker
      console.note(f"{_display(path, 'stdin')}: {JPEG_NOTE}")
    with console.tile_progress(os.path.basename(_display(path, "stdin"))) as progress:
      data, stats = codec.encode(image, model, tile_size=args.tile_size, estimate=args.verbose,
                                 method=args.method, progress=progress)
    _write_and_report(args, console, path, output, data, binary_out, stats, t_read,
                      f"{image.width}x{image.height} {image.mode}, {len(data)} bytes, "
                      f"{stats.bpsp:.4f} bpsp{_method_note(stats)}")

  return _run_jobs(args, jobs, failed, console, code_one)


def _decompress(args, console: _Console, binary_in, binary_out) -> int:
  from l3c_jax.data import images  # pylint: disable=g-import-not-at-top  # no jax import
  if args.output not in (None, STDIO):
    images.output_format(args.output)  # lossy / unknown extensions: refused before any work
  jobs, failed = _plan_jobs(args, default_decompressed_name, console, binary_in, binary_out)

  def code_one(model, path, output):
    from l3c_jax.coding import bitstream  # pylint: disable=g-import-not-at-top
    from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
    ext = "" if output == STDIO else os.path.splitext(output)[1]
    fmt = "PNG" if output == STDIO else images.output_format(output)
    t0 = time.perf_counter()
    data = _read_input(path, binary_in)
    t_read = time.perf_counter() - t0
    # The header says the mode: a format that cannot store it is refused before decoding.
    header, _ = bitstream.unpack(data)
    images.check_storable(fmt, header.mode, header.transparency is not None, ext)
    if model is None:  # no --model: the shipped model the file names (or none for PNG / WebP)
      from l3c_jax import api  # pylint: disable=g-import-not-at-top
      model = api.shipped_model_for_header(header)  # the header parsed above
    with console.tile_progress(os.path.basename(_display(path, "stdin"))) as progress:
      image, stats = codec.decode(data, model, progress=progress)
    _write_and_report(args, console, path, output,
                      images.encode_image_file(image, fmt, ext,
                                               metadata=not args.strip_metadata),
                      binary_out, stats, t_read, f"{image.width}x{image.height} {image.mode}")

  return _run_jobs(args, jobs, failed, console, code_one, preload=args.model is not None)


def _eval(args, console: _Console, binary_in, binary_out) -> int:
  del binary_in, binary_out
  from l3c_jax.data import images  # pylint: disable=g-import-not-at-top
  for path in args.paths:
    if not os.path.exists(path):
      raise CliError(f"{path}: no such file or directory")
  _check_output_dir(args.json)
  if os.path.isdir(args.json):
    raise CliError(f"{args.json} is a directory")
  files = images.list_images(args.paths)
  if not files:
    raise CliError("no images found in " + " ".join(args.paths))
  model = _load_model(args.model)
  from l3c_jax.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  with console.image_progress(len(files)) as progress:
    report = evaluate.evaluate(files, model, tile_size=args.tile_size,
                               warm_up=not args.no_warmup, progress=progress,
                               method=args.method)
  write_atomic(args.json, evaluate.to_json(report).encode(), force=True)
  r = report["results"]
  console.result(f"{report['num_images']} images, {report['num_failed']} failed: "
                 f"{r['bpsp'][0]:.4f} bpsp, {r['bpp'][0]:.4f} bpp "
                 f"(estimated {r['bpsp_estimated'][0]:.4f} bpsp), "
                 f"encode {r['encoding_time'][0]:.3f} s, decode {r['decoding_time'][0]:.3f} s "
                 f"per image -> {args.json}\n")
  if args.verbose:
    for row in report["per_image"]:
      status = "ok" if row["roundtrip_ok"] else f"FAILED: {row['error']}"
      console.out.write(f"  {row['file']}: {row['bpsp'] or float('nan'):.4f} bpsp, {status}\n")
  return 1 if report["num_failed"] else 0


def silence_backend_noise() -> None:
  """Keeps library log chatter off a command-line user's stderr.

  On a machine with an NVIDIA GPU (or TPU) but the CPU-only jaxlib, jax warns at its first
  use that one "may be present" (Python logging, logger `jax._src.xla_bridge`); absl logging
  and XLA's C++ logging (TF_CPP_MIN_LOG_LEVEL, read when XLA starts) can print warnings too.
  None of them is about the user's files; errors still show. Only the command line does this:
  a library must not change its host program's logging.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++: errors only
  for name in ("jax", "absl", "orbax"):
    logging.getLogger(name).setLevel(logging.ERROR)
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top  # jax's own
  absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv: Optional[List[str]] = None, out=None, err=None,
         binary_in: Optional[BinaryIO] = None, binary_out: Optional[BinaryIO] = None) -> int:
  """Runs the CLI; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted).

  Args:
    argv: arguments (default: sys.argv[1:]).
    out, err: text streams for results and for notes / progress / errors (default: stdout,
      stderr).
    binary_in, binary_out: byte streams behind '-' (default: the standard streams' buffers).
  """
  out = out or sys.stdout
  err = err or sys.stderr
  binary_in = binary_in or getattr(sys.stdin, "buffer", sys.stdin)
  binary_out = binary_out or getattr(sys.stdout, "buffer", sys.stdout)
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      args = parse_args(sys.argv[1:] if argv is None else list(argv))
  except SystemExit as e:  # --help / --version (0) or a usage error (2), already printed
    return int(e.code or 0)
  console = _Console(out, err, args.quiet)
  commands = {"compress": _compress, "decompress": _decompress, "eval": _eval}
  try:
    silence_backend_noise()
    from l3c_jax import compile_cache  # pylint: disable=g-import-not-at-top
    compile_cache.enable()
    return commands[args.command](args, console, binary_in, binary_out)
  except KeyboardInterrupt:
    err.write(f"{PROG}: interrupted\n")
    return 130
  except _UsageError as e:
    console.error(f"{e} (see '{PROG} {args.command} --help')")
    return 2
  except Exception as e:  # pylint: disable=broad-except
    console.error(_message(e))
    return 1


def run():
  """Console-script entry point."""
  sys.exit(main())
