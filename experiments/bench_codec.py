"""Codec speed benchmark: encode / decode seconds split into network / tables / entropy coder,
and peak RSS, for 512x512 and 768x512 Kodak crops, with the paper config and the default model.

  python experiments/bench_codec.py [--data_dir ../shared/data/kodak] [--model DIR]
      [--images kodim01.png,kodim23.png] [--repeats 3] [--configs paper,default] [--json PATH]

Each (model, crop size) runs in a fresh process, so its peak RSS is its own (JAX runtime,
compiled code, model, activations and tables; compilation happens in a warm-up round that is
not timed; the "model" column is the RSS after importing JAX and loading the model, before
any compilation or coding). Timings are medians over images x repeats; "cpu" is the
process CPU time (user + sys, all threads), less sensitive than wall time to other jobs on a
shared machine (on 2 free cores, wall is roughly cpu / 1.5-2). "tables" is the time the coding loop
waits for integer tables; table work that overlaps range coding (tables are computed a couple
of chunks ahead, asynchronously) is counted under "coder". The paper config has random weights
(speed does not depend on training); its head biases are set so that pixels and latents get
broad, centred distributions, like a trained model's, rather than the 24-bit tails a random
init gives (the coder's speed depends a little on where symbols fall). Without a shipped
default model (and no --model), a random cf32/nb4/K5 model of the default architecture stands
in and is labelled so. PNG (Pillow, default level 6) encode/decode of the same crops is timed in
the same run as a reference point. To compare with another commit
in one run, see experiments/bench_versus.py.
"""

import argparse
import io
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time

import numpy as np

from l3c_jax.data import images

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "..", "shared", "data", "kodak")
SIZES = ((512, 512), (768, 512))  # (width, height)


def _crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
  """Centre crop of an [H, W, 3] image (portrait images are transposed to landscape first)."""
  if pixels.shape[0] > pixels.shape[1]:
    pixels = pixels.transpose(1, 0, 2)
  return np.ascontiguousarray(images.center_crop(pixels, (height, width)))


def _build_model(spec: dict):
  from l3c_jax import model_io  # pylint: disable=g-import-not-at-top
  from l3c_jax.models import families  # pylint: disable=g-import-not-at-top
  if spec.get("model_dir"):
    return model_io.load_model(spec["model_dir"])
  return model_io.random_model(families.config_from_dict(spec["config"]))


def _cpu_seconds() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def _worker(spec: dict, crops, repeats: int, queue):
  """Runs in a fresh process: warm up, then time encode/decode of each crop."""
  try:
    from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
    model = _build_model(spec)
    _ = model.fingerprint
    base_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    for i, pixels in enumerate(crops):
      image = images.ImageData(pixels, "RGB")
      if i == 0:  # compile everything for this shape
        data, _ = codec.encode(image, model, method="model")
        codec.decode(data, model)
      for _ in range(repeats):
        c0 = _cpu_seconds()
        data, est = codec.encode(image, model, method="model")
        c1 = _cpu_seconds()
        back, dst = codec.decode(data, model)
        c2 = _cpu_seconds()
        assert np.array_equal(back.pixels, pixels), "round trip failed"
        est.times_s["cpu"], dst.times_s["cpu"] = c1 - c0, c2 - c1
        rows.append({"bpsp": est.bpsp, "enc": dict(est.times_s), "dec": dict(dst.times_s)})
    queue.put({"rows": rows, "base_rss_mb": base_rss_mb,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
  except Exception as e:  # pylint: disable=broad-except
    queue.put({"error": f"{type(e).__name__}: {e}"})


def _run_isolated(spec, crops, repeats):
  ctx = mp.get_context("spawn")
  queue = ctx.Queue()
  proc = ctx.Process(target=_worker, args=(spec, crops, repeats, queue))
  proc.start()
  result = queue.get()
  proc.join()
  if "error" in result:
    raise RuntimeError(result["error"])
  return result


def _median(rows, side, stage):
  return statistics.median(r[side].get(stage, 0.0) for r in rows)


def _png_times(crops, repeats):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  enc, dec, bpsp = [], [], []
  for pixels in crops:
    for _ in range(repeats):
      buf = io.BytesIO()
      t0 = time.perf_counter()
      Image.fromarray(pixels).save(buf, format="PNG")
      enc.append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
      dec.append(time.perf_counter() - t0)
      bpsp.append(8 * len(buf.getvalue()) / pixels.size)
  return statistics.median(enc), statistics.median(dec), statistics.mean(bpsp)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
  p.add_argument("--images", default="kodim01.png,kodim23.png")
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--configs", default="paper,default",
                 help="comma list of: paper (random init), default (shipped or --model)")
  p.add_argument("--model", default=None, help="model dir for 'default' (else shipped model)")
  p.add_argument("--json", default=None)
  args = p.parse_args(argv)

  from l3c_jax import model_io  # pylint: disable=g-import-not-at-top
  from l3c_jax.models.config import L3CConfig  # pylint: disable=g-import-not-at-top
  photos = [images.read_image(os.path.join(args.data_dir, f)).pixels
            for f in args.images.split(",")]
  specs = []
  for name in args.configs.split(","):
    if name == "paper":
      specs.append(("paper cf64/nb8/K10 (random init)",
                    {"config": L3CConfig().to_dict()}))
    elif name == "default":
      model_dir = args.model or (model_io.DEFAULT_MODEL_DIR
                                 if os.path.isdir(model_io.DEFAULT_MODEL_DIR) else None)
      if model_dir:
        cfg = model_io.load_model(model_dir).config
        label = (f"default cf{cfg.num_channels}/nb{cfg.num_res_blocks}/K{cfg.num_mixtures} "
                 f"({'shipped' if not args.model else model_dir})")
        specs.append((label, {"model_dir": model_dir}))
      else:
        cfg = L3CConfig(num_channels=32, num_res_blocks=4, num_mixtures=5)
        specs.append(("cf32/nb4/K5 random init (no default model shipped)",
                      {"config": cfg.to_dict()}))
    else:
      p.error(f"unknown config {name}")

  load = os.getloadavg()[0]
  print(f"# bench_codec: {len(photos)} Kodak image(s) x {args.repeats} repeats, medians; "
        f"load average at start {load:.2f} on {os.cpu_count()} CPUs")
  header = (f"{'model':<44}{'size':>9}{'bpsp':>7} | {'enc':>6}{'net':>6}{'tab':>6}{'cod':>6}"
            f" | {'dec':>6}{'net':>6}{'tab':>6}{'cod':>6} | {'RSS MB':>7}{'model':>7}")
  print(header)
  print("-" * len(header))
  results = []
  for w, h in SIZES:
    crops = [_crop(ph, w, h) for ph in photos]
    png_enc, png_dec, png_bpsp = _png_times(crops, args.repeats)
    print(f"{'PNG (Pillow, level 6)':<44}{f'{w}x{h}':>9}{png_bpsp:>7.3f} | {png_enc:>6.3f}"
          f"{'':>18} | {png_dec:>6.3f}{'':>18} |")
    for label, spec in specs:
      r = _run_isolated(spec, crops, args.repeats)
      rows = r["rows"]
      row = {"model": label, "size": f"{w}x{h}",
             "bpsp": statistics.mean(x["bpsp"] for x in rows),
             "peak_rss_mb": r["peak_rss_mb"], "base_rss_mb": r["base_rss_mb"],
             "png_encode_s": png_enc, "png_decode_s": png_dec}
      for side in ("enc", "dec"):
        for stage in ("total", "network", "tables", "coder", "cpu"):
          row[f"{side}_{stage}_s"] = _median(rows, side, stage)
      results.append(row)
      print(f"{label[:43]:<44}{row['size']:>9}{row['bpsp']:>7.3f} | "
            f"{row['enc_total_s']:>6.3f}{row['enc_network_s']:>6.3f}{row['enc_tables_s']:>6.3f}"
            f"{row['enc_coder_s']:>6.3f} | {row['dec_total_s']:>6.3f}{row['dec_network_s']:>6.3f}"
            f"{row['dec_tables_s']:>6.3f}{row['dec_coder_s']:>6.3f} | {row['peak_rss_mb']:>7.0f}"
            f"{row['base_rss_mb']:>7.0f}")
      print(f"{'':<44}{'':>9}{'':>7} | x{row['enc_total_s'] / png_enc:>5.0f} PNG, cpu "
            f"{row['enc_cpu_s']:>5.2f} s | x{row['dec_total_s'] / png_dec:>5.0f} PNG, cpu "
            f"{row['dec_cpu_s']:>5.2f} s")
  print(f"# load average at end {os.getloadavg()[0]:.2f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"rows": results,
                 "load_average": [load, os.getloadavg()[0]]}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
