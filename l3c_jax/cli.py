"""Command line: `l3c-jax compress | decompress | eval` (also `python -m l3c_jax`).

  l3c-jax compress IN [OUT] [-f] [--model DIR] [--tile_size N] [--verbose]
      OUT defaults to IN + ".l3c". Prints the size and the bits per sub-pixel.
  l3c-jax decompress IN [OUT] [-f] [--model DIR] [--verbose]
      OUT defaults to IN without ".l3c" as a PNG (e.g. a.png.l3c -> a.png; a.jpg.l3c -> a.png).
  l3c-jax eval DIR_OR_FILES... --json PATH [--model DIR] [--tile_size N] [--no_warmup]
      Codes every image for real, checks the round trips, writes a CompressAI-style JSON.

Outputs are never overwritten without -f and are written atomically (temporary file in the
same directory, then rename), so a failure leaves no partial file. Errors are one line on
stderr, `l3c-jax: error: ...`, with exit status 1 (2 for usage errors). Compiled XLA code is
cached on disk between runs (see `_enable_compilation_cache`; L3C_JAX_CACHE_DIR=off disables).
"""

import argparse
import os
import sys
import time
from typing import List, Optional

PROG = "l3c-jax"


class CliError(Exception):
  """A user-facing error (printed as one line)."""


def _parser() -> argparse.ArgumentParser:
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--model", metavar="DIR", default=None,
                      help="exported model directory or training workdir "
                           "(default: the shipped default model)")
  common.add_argument("-v", "--verbose", action="store_true",
                      help="print per-scale theoretical vs written bits and stage times")
  tiles = argparse.ArgumentParser(add_help=False)
  tiles.add_argument("--tile_size", type=int, default=None, metavar="N",
                     help="code images in independent tiles of N x N pixels (default 1024)")
  tiles.add_argument("--method", choices=("auto", "model", "png", "webp"), default=None,
                     help="how pixels are coded: auto (default for compress: the smaller of the "
                          "model and PNG; few-colour images as PNG or WebP), model (default for "
                          "eval), or an embedded png / webp stream")
  strip = argparse.ArgumentParser(add_help=False)
  strip.add_argument("--strip_metadata", action="store_true",
                     help="drop the ICC profile, EXIF, text and other metadata chunks")
  force = argparse.ArgumentParser(add_help=False)
  force.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")

  p = argparse.ArgumentParser(prog=PROG, description="Lossless image compression with L3C.")
  sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
  c = sub.add_parser("compress", parents=[common, tiles, strip, force], help="image -> .l3c file")
  c.add_argument("input", metavar="IN")
  c.add_argument("output", metavar="OUT", nargs="?")
  d = sub.add_parser("decompress", parents=[common, strip, force], help=".l3c file -> PNG")
  d.add_argument("input", metavar="IN")
  d.add_argument("output", metavar="OUT", nargs="?")
  e = sub.add_parser("eval", parents=[common, tiles],
                     help="code images for real and report bpsp and times as JSON")
  e.add_argument("paths", metavar="DIR_OR_FILES", nargs="+")
  e.add_argument("--json", required=True, metavar="PATH", help="where to write the report")
  e.add_argument("--no_warmup", action="store_true",
                 help="do not compile before timing each new image shape")
  return p


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
  if os.path.exists(path) and not force:
    raise CliError(f"{path} exists (use -f to overwrite)")


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


def _method_note(stats) -> str:
  """' (stored as png)' when the file holds an embedded stream instead of the model's coding."""
  from l3c_jax.coding import bitstream  # pylint: disable=g-import-not-at-top
  if stats.method == bitstream.METHOD_MODEL:
    return ""
  return f" (stored as {bitstream.METHOD_NAMES[stats.method]}, smaller than the model's coding)"


def _compress(args, out, err) -> int:
  from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
  from l3c_jax.data import images  # pylint: disable=g-import-not-at-top
  output = args.output or default_compressed_name(args.input)
  _check_output(output, args.force)  # before the work, not only when writing
  t0 = time.perf_counter()
  image = images.read_image(args.input, metadata=not args.strip_metadata)
  t_read = time.perf_counter() - t0
  model = _load_model(args.model)
  data, stats = codec.encode(image, model, tile_size=args.tile_size or codec.DEFAULT_TILE_SIZE,
                             estimate=args.verbose, method=args.method or "auto")
  t0 = time.perf_counter()
  write_atomic(output, data, args.force)
  t_write = time.perf_counter() - t0
  out.write(f"{args.input} -> {output}: {image.width}x{image.height} {image.mode}, "
            f"{len(data)} bytes, {stats.bpsp:.4f} bpsp{_method_note(stats)}\n")
  if args.verbose:
    _print_verbose(stats, out, {"read": t_read, "write": t_write})
  return 0


def _decompress(args, out, err) -> int:
  from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
  from l3c_jax.data import images  # pylint: disable=g-import-not-at-top
  output = args.output or default_decompressed_name(args.input)
  _check_output(output, args.force)  # before the work, not only when writing
  t0 = time.perf_counter()
  with open(args.input, "rb") as f:
    data = f.read()
  t_read = time.perf_counter() - t0
  model = _load_model(args.model)
  image, stats = codec.decode(data, model)
  t0 = time.perf_counter()
  write_atomic(output, images.png_bytes(image, metadata=not args.strip_metadata), args.force)
  t_write = time.perf_counter() - t0
  out.write(f"{args.input} -> {output}: {image.width}x{image.height} {image.mode}\n")
  if args.verbose:
    _print_verbose(stats, out, {"read": t_read, "write": t_write})
  return 0


def _eval(args, out, err) -> int:
  from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
  from l3c_jax.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  from l3c_jax.data import images  # pylint: disable=g-import-not-at-top
  files = images.list_images(args.paths)
  if not files:
    raise CliError("no images found in " + " ".join(args.paths))
  model = _load_model(args.model)
  report = evaluate.evaluate(files, model, tile_size=args.tile_size or codec.DEFAULT_TILE_SIZE,
                             warm_up=not args.no_warmup, progress=err,
                             method=args.method or "model")
  write_atomic(args.json, evaluate.to_json(report).encode(), force=True)
  r = report["results"]
  out.write(f"{report['num_images']} images, {report['num_failed']} failed: "
            f"{r['bpsp'][0]:.4f} bpsp, {r['bpp'][0]:.4f} bpp "
            f"(estimated {r['bpsp_estimated'][0]:.4f} bpsp), "
            f"encode {r['encoding_time'][0]:.3f} s, decode {r['decoding_time'][0]:.3f} s "
            f"per image -> {args.json}\n")
  if args.verbose:
    for row in report["per_image"]:
      status = "ok" if row["roundtrip_ok"] else f"FAILED: {row['error']}"
      out.write(f"  {row['file']}: {row['bpsp'] or float('nan'):.4f} bpsp, {status}\n")
  return 1 if report["num_failed"] else 0


def _enable_compilation_cache() -> None:
  """Persistent XLA compilation cache, so repeated runs skip most of the ~2 s of compiling.

  Directory: $L3C_JAX_CACHE_DIR, else $XDG_CACHE_HOME/l3c-jax/xla (~/.cache/l3c-jax/xla);
  L3C_JAX_CACHE_DIR=off disables it. A cached executable is the compiled code itself, so
  coding results are identical with or without it.
  """
  path = os.environ.get("L3C_JAX_CACHE_DIR")
  if path is None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "l3c-jax", "xla")
  if not path or path == "off":
    return
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_compilation_cache_dir:  # the user configured one
    return
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def _user_errors():
  """Exception types whose message is shown as is (imports deferred to keep --help fast)."""
  from l3c_jax.coding.bitstream import CodecError  # pylint: disable=g-import-not-at-top
  from l3c_jax.data.images import ImageError  # pylint: disable=g-import-not-at-top
  from l3c_jax.model_io import ModelError  # pylint: disable=g-import-not-at-top
  return (CliError, CodecError, ImageError, ModelError)


def main(argv: Optional[List[str]] = None, out=None, err=None) -> int:
  """Runs the CLI; returns the exit status (0 ok, 1 error, 2 usage)."""
  out = out or sys.stdout
  err = err or sys.stderr
  try:
    args = _parser().parse_args(argv)
  except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
    return int(e.code or 0)
  commands = {"compress": _compress, "decompress": _decompress, "eval": _eval}
  try:
    _enable_compilation_cache()
    return commands[args.command](args, out, err)
  except KeyboardInterrupt:
    err.write(f"{PROG}: interrupted\n")
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, _user_errors()):
      msg = str(e)
    elif isinstance(e, OSError):
      msg = f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
    else:  # a bug; still one line for the user, the traceback with L3C_JAX_TRACEBACK=1
      if os.environ.get("L3C_JAX_TRACEBACK"):
        raise
      msg = f"internal error ({type(e).__name__}: {e})"
    err.write(f"{PROG}: error: {' '.join(msg.split())}\n")
    return 1


def run():
  """Console-script entry point."""
  sys.exit(main())
