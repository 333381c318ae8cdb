"""The l3c-jax command line, driven through cli.main(argv)."""

import argparse
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from l3c_jax import cli
from l3c_jax import model_io
from l3c_jax.data import images

from conftest import random_params


def run(*argv):
  out, err = io.StringIO(), io.StringIO()
  rc = cli.main([str(a) for a in argv], out=out, err=err)
  return rc, out.getvalue(), err.getvalue()


def _png(path, np_rng, mode="RGB", shape=(7, 9)):
  arr = np_rng.integers(0, 256, shape + ((3,) if mode == "RGB" else ())).astype(np.uint8)
  Image.fromarray(arr, mode).save(path)
  return arr


def _assert_one_line_error(rc, err, pattern):
  assert rc == 1
  assert err.startswith("l3c-jax: error: ") and err.count("\n") == 1, err
  assert pattern in err, err
  assert "Traceback" not in err


def test_cli_help_and_usage_errors(capsys):
  assert cli.main(["--help"]) == 0
  assert "compress" in capsys.readouterr().out
  for argv in ([], ["compress"], ["frobnicate", "x"], ["eval", "x"],  # --json is required
               ["compress", "a.png", "-q", "-v"]):
    rc, _, err = run(*argv)
    assert rc == 2 and err.startswith("l3c-jax: error: ") and err.count("\n") == 1, (argv, err)


def test_cli_version_and_help_on_every_argument():
  import l3c_jax  # pylint: disable=import-outside-toplevel
  assert run("--version")[:2] == (0, f"l3c-jax {l3c_jax.__version__}\n")
  parser, commands = cli._parser()  # pylint: disable=protected-access
  for name, sub in [("", parser)] + list(commands.items()):
    for action in sub._actions:  # pylint: disable=protected-access
      if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
        continue
      assert action.help, (name, action.dest)
      # Options with a value say their default (flags say what happens without them).
      if action.option_strings and action.dest not in ("help", "version", "json"):
        assert "default" in action.help, (name, action.dest)
    rc, out, _ = run(*([name] if name else []), "--help")
    assert rc == 0 and "usage: l3c-jax" in out
  from l3c_jax.coding import codec  # pylint: disable=import-outside-toplevel
  assert cli.DEFAULT_TILE_SIZE == codec.DEFAULT_TILE_SIZE


@pytest.fixture
def no_model(monkeypatch):
  """Makes loading a model fail loudly: what must be refused before it, is."""
  def fail(path):
    raise AssertionError("the model was loaded")
  monkeypatch.setattr(cli, "_load_model", fail)


def test_cli_checks_arguments_inputs_and_outputs_before_loading_the_model(tmp_path, np_rng,
                                                                           no_model):
  src = tmp_path / "a.png"
  _png(src, np_rng)
  (tmp_path / "taken.l3c").write_bytes(b"x")
  (tmp_path / "adir").mkdir()
  usage = [  # exit status 2
      ["compress", src, src, "-o", tmp_path / "x.l3c"],  # -o with two inputs
      ["compress", src, "-o", tmp_path / "x.l3c", src],  # ... also after the option
      ["compress", "-"],  # stdin without -o
      ["compress", src, "--tile_size", "0"], ["compress", src, "--tile_size", "-64"],
      ["compress", src, "--tile_size", "32"], ["compress", src, "--tile_size", "100"],
      ["compress", src, "--tile_size", "1e3"], ["eval", src, "--json", "r.json",
                                                "--tile_size", "8"],
  ]
  for argv in usage:
    rc, _, err = run(*argv)
    assert rc == 2 and err.count("\n") == 1 and "l3c-jax: error: " in err, (argv, err)
  assert "multiple of 8 from 64" in run("compress", src, "--tile_size", "20")[2]
  errors = [  # exit status 1, one line
      (["compress", tmp_path / "missing.png"], "missing.png: no such file"),
      (["compress", tmp_path / "adir"], "adir is a directory"),
      (["compress", src, "-o", tmp_path / "nodir" / "x.l3c"], "directory"),
      (["compress", src, "-o", tmp_path / "taken.l3c"], "exists (use -f to overwrite)"),
      (["compress", src, "-o", tmp_path / "adir"], "adir is a directory"),
      (["compress", src, "-o", src, "-f"], "would overwrite its own input"),
      (["decompress", tmp_path / "taken.l3c", "-o", tmp_path / "x.jpg"], "lossy"),
      (["decompress", tmp_path / "taken.l3c", "-o", tmp_path / "x.xyz"], "unknown output"),
      (["eval", tmp_path / "missing", "--json", tmp_path / "r.json"], "no such file"),
      (["eval", src, "--json", tmp_path / "nodir" / "r.json"], "does not exist"),
  ]
  for argv, pattern in errors:
    _assert_one_line_error(*run(*argv)[::2], pattern)
  # Several bad inputs: one line each, still no model.
  rc, _, err = run("compress", tmp_path / "m1.png", tmp_path / "m2.png")
  assert rc == 1 and err.count("\n") == 2 and "model was loaded" not in err


def test_cli_tile_size_must_fit_the_model(tmp_path, np_rng, tiny_config):
  # A model with S=4 needs tiles in multiples of 16: refused once its config is known, before
  # any image is coded (no compiling: parameters from shapes only).
  s4 = tiny_config.replace(num_scales=4)
  model_io.save_model(str(tmp_path / "s4"), s4, random_params(s4))
  _png(tmp_path / "a.png", np_rng)
  _assert_one_line_error(*run("compress", tmp_path / "a.png", "--tile_size", "72", "--model",
                              tmp_path / "s4")[::2], "not a multiple of this model's 16")
  assert not (tmp_path / "a.png.l3c").exists()


def test_cli_codes_several_inputs_each_to_its_own_name_and_continues_past_failures(
    tmp_path, np_rng, model_dir):
  arrays = {n: _png(tmp_path / n, np_rng) for n in ("a.png", "b.png")}
  (tmp_path / "bad.png").write_bytes(b"not a png")
  rc, out, err = run("compress", tmp_path / "a.png", tmp_path / "bad.png", tmp_path / "b.png",
                     "--model", model_dir)
  assert rc == 1 and err.count("\n") == 1 and "bad.png: cannot read image" in err, err
  assert out.count("\n") == 2 and (tmp_path / "a.png.l3c").is_file()
  assert (tmp_path / "b.png.l3c").is_file() and not (tmp_path / "bad.png.l3c").exists()
  for n in arrays:
    os.remove(tmp_path / n)
  rc, out, err = run("decompress", tmp_path / "a.png.l3c", tmp_path / "b.png.l3c", "--model",
                     model_dir)
  assert rc == 0 and not err
  for n, arr in arrays.items():
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / n)), arr)


class _Terminal(io.BytesIO):
  def isatty(self):
    return True


def test_cli_standard_input_and_output(tmp_path, np_rng, model_dir):
  src = tmp_path / "a.png"
  arr = _png(src, np_rng)
  out, err, binary_out = io.StringIO(), io.StringIO(), io.BytesIO()
  rc = cli.main(["compress", "-", "-o", "-", "--model", model_dir], out=out, err=err,
                binary_in=io.BytesIO(src.read_bytes()), binary_out=binary_out)
  assert rc == 0 and out.getvalue() == ""  # stdout carries the data: the summary is on stderr
  assert "<stdin> -> <stdout>" in err.getvalue()
  data = binary_out.getvalue()
  assert data.startswith(b"L3C") or len(data) > 20
  out, err, binary_out = io.StringIO(), io.StringIO(), io.BytesIO()
  rc = cli.main(["decompress", "-", "-o", "-", "-q", "--model", model_dir], out=out, err=err,
                binary_in=io.BytesIO(data), binary_out=binary_out)
  assert rc == 0 and out.getvalue() == "" and err.getvalue() == ""  # -q: errors only
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(binary_out.getvalue()))), arr)
  # Binary data is never written to a terminal (before any work: no model given here).
  err = io.StringIO()
  rc = cli.main(["compress", str(src), "-o", "-"], out=io.StringIO(), err=err,
                binary_out=_Terminal())
  assert rc == 1 and "to a terminal" in err.getvalue() and err.getvalue().count("\n") == 1
  err = io.StringIO()  # nor read from one (it would wait for typed bytes)
  rc = cli.main(["decompress", "-", "-o", str(tmp_path / "x.png")], out=io.StringIO(), err=err,
                binary_in=_Terminal())
  assert rc == 1 and "from a terminal" in err.getvalue() and err.getvalue().count("\n") == 1


@pytest.mark.parametrize("ext,mode", [(".webp", "RGB"), (".tif", "L"), (".bmp", "RGB"),
                                      (".pgm", "L"), (".png", "L")])
def test_cli_decompress_writes_the_format_of_the_extension(tmp_path, np_rng, model_dir, ext,
                                                           mode):
  src = tmp_path / "a.png"
  arr = _png(src, np_rng, mode)
  assert run("compress", src, "-q", "--model", model_dir)[0] == 0
  out = tmp_path / ("b" + ext)
  rc, _, err = run("decompress", tmp_path / "a.png.l3c", "-o", out, "--model", model_dir)
  assert rc == 0, err
  with Image.open(out) as img:
    assert img.format == images.OUTPUT_FORMATS[ext]
    np.testing.assert_array_equal(np.asarray(img), arr)
  if mode == "L":  # a format that cannot hold the mode is refused from the header, undecoded
    _assert_one_line_error(*run("decompress", tmp_path / "a.png.l3c", "-o", tmp_path / "c.webp",
                                "--model", model_dir)[::2], "cannot store L images exactly")
    assert not (tmp_path / "c.webp").exists()


class _TerminalText(io.StringIO):
  def isatty(self):
    return True


def test_cli_progress_only_on_a_terminal_and_jpeg_note(tmp_path, np_rng, model_dir,
                                                       monkeypatch):
  src = tmp_path / "a.jpg"
  Image.fromarray(np_rng.integers(0, 256, (7, 9, 3)).astype(np.uint8)).save(src, quality=90)
  # No 2 s grace (this tiny image takes less), so that a bar would show at once.
  monkeypatch.setattr(cli, "PROGRESS_DELAY_S", 0.0)
  # Not a terminal: no carriage returns, one note for the JPEG input.
  rc, _, err = run("compress", src, "--model", model_dir)
  assert rc == 0 and "\r" not in err
  assert err == f"l3c-jax: note: {src}: {cli.JPEG_NOTE}\n"
  assert run("compress", src, "-f", "-q", "--model", model_dir)[1:] == ("", "")
  # A terminal: a bar of pixels coded.
  err = _TerminalText()
  rc = cli.main(["compress", str(src), "-f", "--tile_size", "64", "--model", model_dir],
                out=io.StringIO(), err=err)
  assert rc == 0 and "\r" in err.getvalue() and "/63.0 [" in err.getvalue(), err.getvalue()
  assert err.getvalue().endswith("\r")  # the bar is cleared: the summary line follows alone
  err = _TerminalText()
  rc = cli.main(["eval", str(src), "--json", str(tmp_path / "r.json"), "--no_warmup", "--model",
                 model_dir], out=io.StringIO(), err=err)
  assert rc == 0 and "\r" in err.getvalue() and "image" in err.getvalue()


# `python -m l3c_jax ARGS` (runpy runs l3c_jax/__main__.py as -m does) on a machine that looks,
# to jax, like one with an NVIDIA GPU but the CPU-only jaxlib: jax then warns at its first use.
_DASH_M_ON_A_GPU_MACHINE = """
import runpy, sys
import jax._src.hardware_utils as hardware_utils
hardware_utils.has_visible_nvidia_gpu = lambda: True
sys.argv = ["l3c_jax"] + sys.argv[1:]
runpy.run_module("l3c_jax", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_cli_python_dash_m_runs_quietly_and_fills_the_compilation_cache(tmp_path, np_rng,
                                                                        model_dir):
  # A subprocess on purpose: what is tested is the process environment: the `python -m l3c_jax`
  # entry point, the persistent compilation cache that main() switches on at process start (a
  # process-wide JAX setting that must not leak into the other tests), and a stderr free of
  # backend noise, which jax prints once per process, when its backends start. (One process:
  # --help is tested in-process above.)
  _png(tmp_path / "a.png", np_rng)
  env = dict(os.environ, L3C_JAX_CACHE_DIR=str(tmp_path / "cache"))
  env.pop("JAX_PLATFORMS", None)  # jax suggests missing backends only when choosing itself
  proc = subprocess.run([sys.executable, "-c", _DASH_M_ON_A_GPU_MACHINE, "compress",
                         str(tmp_path / "a.png"), "--model", model_dir], capture_output=True,
                        text=True, timeout=300, env=env,
                        cwd=os.path.dirname(os.path.dirname(__file__)))
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == ""  # without cli.silence_backend_noise: "An NVIDIA GPU may be present"
  assert proc.stdout.startswith(str(tmp_path / "a.png") + " -> ")
  assert (tmp_path / "a.png.l3c").is_file() and os.listdir(tmp_path / "cache")


def test_cli_compress_decompress_roundtrip(tmp_path, np_rng, model_dir):
  src = tmp_path / "img.png"
  arr = _png(src, np_rng)
  rc, out, _ = run("compress", src, "--model", model_dir)
  assert rc == 0 and "bpsp" in out
  assert (tmp_path / "img.png.l3c").is_file()
  # The default output name is the original: refused without -f.
  rc, _, err = run("decompress", tmp_path / "img.png.l3c", "--model", model_dir)
  _assert_one_line_error(rc, err, "exists (use -f to overwrite)")
  rc, _, _ = run("decompress", tmp_path / "img.png.l3c", "-o", tmp_path / "out.png", "--model",
                 model_dir)
  assert rc == 0
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), arr)
  # Compressing again onto the existing .l3c needs -f.
  rc, _, err = run("compress", src, "--model", model_dir)
  _assert_one_line_error(rc, err, "exists")
  assert run("compress", src, "-f", "--model", model_dir)[0] == 0
  os.remove(src)
  assert run("decompress", tmp_path / "img.png.l3c", "--model", model_dir)[0] == 0
  np.testing.assert_array_equal(np.asarray(Image.open(src)), arr)


def test_cli_verbose_reports_scales_and_times(tmp_path, np_rng, model_dir):
  src = tmp_path / "img.png"
  _png(src, np_rng, "L")
  rc, out, _ = run("compress", src, "-o", tmp_path / "a.l3c", "-v", "--model", model_dir,
                   "--method", "model")
  assert rc == 0
  for word in ("theory bits", "written bits", "z3", "z1", " x ", "header", "network",
               "tables", "coder"):
    assert word in out, word
  rc, out, _ = run("decompress", tmp_path / "a.l3c", "-o", tmp_path / "a.png", "-v", "--model",
                   model_dir)
  assert rc == 0 and "written bits" in out and "tables" in out


def test_cli_errors_are_one_line_and_leave_no_files(tmp_path, np_rng, model_dir,
                                                    tiny_config):
  src = tmp_path / "img.png"
  _png(src, np_rng)
  assert run("compress", src, "-o", tmp_path / "good.l3c", "--model", model_dir, "--method",
             "model")[0] == 0
  good = (tmp_path / "good.l3c").read_bytes()
  bad = bytearray(good)
  bad[len(bad) // 2] ^= 1
  (tmp_path / "bad.l3c").write_bytes(bytes(bad))
  (tmp_path / "short.l3c").write_bytes(good[:-3])
  before = set(os.listdir(tmp_path))
  _assert_one_line_error(*run("decompress", tmp_path / "bad.l3c", "-o", tmp_path / "o1.png",
                              "--model", model_dir)[::2], "corrupt")
  _assert_one_line_error(*run("decompress", tmp_path / "short.l3c", "-o", tmp_path / "o2.png",
                              "--model", model_dir)[::2], "truncated")
  _assert_one_line_error(*run("decompress", src, "-o", tmp_path / "o3.png", "--model",
                              model_dir)[::2], "not an l3c-jax file")
  _assert_one_line_error(*run("decompress", tmp_path / "missing.l3c", "-o", tmp_path / "o4.png",
                              "--model", model_dir)[::2], "missing.l3c")
  other = tmp_path / "other_model"
  model_io.save_model(str(other), tiny_config, random_params(tiny_config, seed=5))
  _assert_one_line_error(*run("decompress", tmp_path / "good.l3c", "-o", tmp_path / "o5.png",
                              "--model", other)[::2], "different model")
  _assert_one_line_error(*run("compress", src, "-o", tmp_path / "o6.l3c", "--model",
                              tmp_path / "nomodel")[::2], "does not exist")
  deep = tmp_path / "deep.png"
  Image.new("I;16", (4, 3), 1000).save(deep)
  _assert_one_line_error(*run("compress", deep, "-o", tmp_path / "o7.l3c", "--model",
                              model_dir)[::2], "8 bits per sample")
  assert set(os.listdir(tmp_path)) == before | {"other_model", "deep.png"}  # no partial files
  if not os.path.isdir(model_io.DEFAULT_MODEL_DIR):
    _assert_one_line_error(*run("compress", src, "-o", tmp_path / "o8.l3c")[::2],
                           "no default model")


def test_cli_eval_writes_compressai_style_json(tmp_path, np_rng, model_dir):
  d = tmp_path / "imgs"
  d.mkdir()
  _png(d / "a.png", np_rng)
  _png(d / "b.png", np_rng, "L")
  (d / "notes.txt").write_text("not an image")
  report_path = tmp_path / "report.json"
  rc, out, err = run("eval", d, "--json", report_path, "--model", model_dir)
  assert rc == 0, err
  assert "2/2" in err  # the progress bar
  report = json.loads(report_path.read_text())
  assert report["name"] == "l3c-jax" and report["num_images"] == 2
  assert report["num_failed"] == 0
  for key in ("bpsp", "bpsp_estimated", "bpp", "encoding_time", "decoding_time"):
    assert len(report["results"][key]) == 1 and report["results"][key][0] > 0, key
  rows = report["per_image"]
  assert [os.path.basename(r["file"]) for r in rows] == ["a.png", "b.png"]
  assert all(r["roundtrip_ok"] for r in rows)
  assert rows[1]["num_subpixels"] == 7 * 9  # grayscale: one sub-pixel per pixel
  assert report["results"]["bpsp"][0] == pytest.approx(np.mean([r["bpsp"] for r in rows]))
  assert "bpsp" in out


@pytest.mark.slow
def test_cli_keeps_metadata_and_strips_it_on_request(tmp_path, np_rng, model_dir):
  from PIL import ImageCms, PngImagePlugin  # pylint: disable=g-import-not-at-top
  icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  info = PngImagePlugin.PngInfo()
  info.add_text("Title", "kept")
  src = tmp_path / "meta.png"
  Image.fromarray(np_rng.integers(0, 256, (9, 7, 3)).astype(np.uint8)).save(
      src, pnginfo=info, icc_profile=icc)
  assert run("compress", src, "-o", tmp_path / "m.l3c", "--model", model_dir)[0] == 0
  assert run("decompress", tmp_path / "m.l3c", "-o", tmp_path / "m.png", "--model",
             model_dir)[0] == 0
  back = Image.open(tmp_path / "m.png")
  assert back.info["icc_profile"] == icc and back.text == {"Title": "kept"}
  assert run("decompress", tmp_path / "m.l3c", "-o", tmp_path / "m.webp", "--model",
             model_dir)[0] == 0
  assert Image.open(tmp_path / "m.webp").info["icc_profile"] == icc
  assert run("decompress", tmp_path / "m.l3c", "-o", tmp_path / "s.png", "--model", model_dir,
             "--strip_metadata")[0] == 0
  assert "icc_profile" not in Image.open(tmp_path / "s.png").info
  assert run("compress", src, "-o", tmp_path / "s.l3c", "--model", model_dir,
             "--strip_metadata")[0] == 0
  assert run("decompress", tmp_path / "s.l3c", "-o", tmp_path / "s2.png", "--model",
             model_dir)[0] == 0
  assert Image.open(tmp_path / "s2.png").text == {}


@pytest.mark.slow
def test_cli_says_when_an_embedded_stream_was_stored(tmp_path, model_dir):
  src = tmp_path / "pal.png"
  Image.fromarray((np.arange(64 * 48) % 5).reshape(48, 64).astype(np.uint8) * 40).convert(
      "P").save(src)
  rc, out, _ = run("compress", src, "--model", model_dir)
  assert rc == 0 and "(stored as " in out
  rc, out, _ = run("compress", src, "-o", tmp_path / "m.l3c", "--model", model_dir, "--method",
                   "model")
  assert rc == 0 and "stored as" not in out
