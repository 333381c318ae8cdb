"""The l3c-jax command line, driven through cli.main(argv)."""

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
  assert cli.main([]) == 2
  assert cli.main(["compress"]) == 2
  assert cli.main(["frobnicate", "x"]) == 2
  assert cli.main(["eval", "x"]) == 2  # --json is required


def test_cli_python_dash_m_runs_the_cli_and_fills_the_compilation_cache(tmp_path, np_rng,
                                                                        model_dir):
  # A subprocess on purpose: what is tested is the `python -m l3c_jax` entry point and the
  # persistent compilation cache that main() switches on from the environment at process start,
  # a process-wide JAX setting that must not leak into the other tests. (One process: --help is
  # tested in-process above; a compress run proves that `-m l3c_jax` reaches cli.main.)
  _png(tmp_path / "a.png", np_rng)
  env = dict(os.environ, L3C_JAX_CACHE_DIR=str(tmp_path / "cache"))
  proc = subprocess.run([sys.executable, "-m", "l3c_jax", "compress", str(tmp_path / "a.png"),
                         "--model", model_dir], capture_output=True, text=True, timeout=300,
                        env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert proc.returncode == 0, proc.stderr
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
  rc, _, _ = run("decompress", tmp_path / "img.png.l3c", tmp_path / "out.png", "--model",
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
  rc, out, _ = run("compress", src, tmp_path / "a.l3c", "-v", "--model", model_dir,
                   "--method", "model")
  assert rc == 0
  for word in ("theory bits", "written bits", "z3", "z1", " x ", "header", "network",
               "tables", "coder"):
    assert word in out, word
  rc, out, _ = run("decompress", tmp_path / "a.l3c", tmp_path / "a.png", "-v", "--model",
                   model_dir)
  assert rc == 0 and "written bits" in out and "tables" in out


def test_cli_errors_are_one_line_and_leave_no_files(tmp_path, np_rng, model_dir,
                                                    tiny_config):
  src = tmp_path / "img.png"
  _png(src, np_rng)
  assert run("compress", src, tmp_path / "good.l3c", "--model", model_dir, "--method",
             "model")[0] == 0
  good = (tmp_path / "good.l3c").read_bytes()
  bad = bytearray(good)
  bad[len(bad) // 2] ^= 1
  (tmp_path / "bad.l3c").write_bytes(bytes(bad))
  (tmp_path / "short.l3c").write_bytes(good[:-3])
  before = set(os.listdir(tmp_path))
  _assert_one_line_error(*run("decompress", tmp_path / "bad.l3c", tmp_path / "o1.png",
                              "--model", model_dir)[::2], "corrupt")
  _assert_one_line_error(*run("decompress", tmp_path / "short.l3c", tmp_path / "o2.png",
                              "--model", model_dir)[::2], "truncated")
  _assert_one_line_error(*run("decompress", src, tmp_path / "o3.png", "--model",
                              model_dir)[::2], "not an l3c-jax file")
  _assert_one_line_error(*run("decompress", tmp_path / "missing.l3c", tmp_path / "o4.png",
                              "--model", model_dir)[::2], "missing.l3c")
  other = tmp_path / "other_model"
  model_io.save_model(str(other), tiny_config, random_params(tiny_config, seed=5))
  _assert_one_line_error(*run("decompress", tmp_path / "good.l3c", tmp_path / "o5.png",
                              "--model", other)[::2], "different model")
  _assert_one_line_error(*run("compress", src, tmp_path / "o6.l3c", "--model",
                              tmp_path / "nomodel")[::2], "does not exist")
  deep = tmp_path / "deep.png"
  Image.new("I;16", (4, 3), 1000).save(deep)
  _assert_one_line_error(*run("compress", deep, tmp_path / "o7.l3c", "--model",
                              model_dir)[::2], "8 bits per sample")
  assert set(os.listdir(tmp_path)) == before | {"other_model", "deep.png"}  # no partial files
  if not os.path.isdir(model_io.DEFAULT_MODEL_DIR):
    _assert_one_line_error(*run("compress", src, tmp_path / "o8.l3c")[::2],
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
