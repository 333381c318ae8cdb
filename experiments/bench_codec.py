"""Codec speed benchmark: encode / decode seconds split into network / tables / entropy coder,
and peak RSS, for 512x512 and 768x512 Kodak crops, with the paper config and the default model.

  python experiments/bench_codec.py [--data_dir ../shared/data/kodak] [--model DIR]
      [--images kodim01.png,kodim23.png] [--repeats 3] [--configs paper,default] [--json PATH]
  python experiments/bench_codec.py --megapixels 0.26,1,4,12 [--mp_repeats 1] [--mp_image kodim23.png]

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
MP_SIZES = {"0.26": (512, 512), "1": (1024, 1024), "4": (2048, 2048),
            "12": (4000, 3000)}  # megapixels -> (width, height)


def _crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
  """Centre crop of an [H, W, 3] image (portrait images are transposed to landscape first)."""
  if pixels.shape[0] > pixels.shape[1]:
    pixels = pixels.transpose(1, 0, 2)
  return np.ascontiguousarray(images.center_crop(pixels, (height, width)))


def _mirror_tiled(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
  """An [height, width, 3] image from a photo: its centre crop if it is large enough, else the
  photo mirror-tiled (reflections at every edge, np.pad 'symmetric')."""
  if pixels.shape[0] > pixels.shape[1]:
    pixels = pixels.transpose(1, 0, 2)
  if height <= pixels.shape[0] and width <= pixels.shape[1]:
    return _crop(pixels, width, height)
  reps = ((0, max(0, height - pixels.shape[0])), (0, max(0, width - pixels.shape[1])), (0, 0))
  return np.ascontiguousarray(np.pad(pixels, reps, mode="symmetric")[:height, :width])


def _warmup_size(height: int, width: int, tile_size: int):
  """(h, w) of the smallest image whose tiles have every tile shape of a height x width one."""
  def side(n):
    return min(n, tile_size) + (n % tile_size if n > tile_size and n % tile_size else 0)
  return side(height), side(width)


def _mp_worker(spec: dict, pixels, repeats: int, queue):
  """Fresh process: warm up on the tile shapes of `pixels`, then time encode / decode."""
  try:
    from l3c_jax.coding import codec  # pylint: disable=g-import-not-at-top
    model = _build_model(spec)
    h, w = _warmup_size(pixels.shape[0], pixels.shape[1], codec.DEFAULT_TILE_SIZE)
    warm = images.ImageData(np.ascontiguousarray(pixels[:h, :w]), "RGB")
    # method="model": with 'auto' a big mirror-tiled image can go to the embedded WebP stream
    # (its repeats suit WebP's LZ77), and the row would time WebP (1.525 bpsp at 12 MP once).
    data, _ = codec.encode(warm, model, method="model")
    codec.decode(data, model)
    image = images.ImageData(pixels, "RGB")
    rows = []
    for _ in range(repeats):
      c0 = _cpu_seconds()
      t0 = time.perf_counter()
      data, est = codec.encode(image, model, method="model")
      t1 = time.perf_counter()
      c1 = _cpu_seconds()
      back, _ = codec.decode(data, model)
      t2 = time.perf_counter()
      c2 = _cpu_seconds()
      assert np.array_equal(back.pixels, pixels), "round trip failed"
      rows.append({"bpsp": est.bpsp, "enc_s": t1 - t0, "dec_s": t2 - t1, "enc_cpu_s": c1 - c0,
                   "dec_cpu_s": c2 - c1})
    queue.put({"rows": rows,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
  except Exception as e:  # pylint: disable=broad-except
    queue.put({"error": f"{type(e).__name__}: {e}"})


def _jpegxl_times(pixels, repeats: int):
  """Median encode / decode seconds and bpsp of JPEG XL lossless, effort 7, 2 threads."""
  from l3c_jax.evaluation import classical  # pylint: disable=g-import-not-at-top
  ic = classical.import_imagecodecs()
  enc, dec = [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    data = ic.jpegxl_encode(pixels, lossless=True, effort=7, usecontainer=False, numthreads=2)
    enc.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    back = ic.jpegxl_decode(data, numthreads=2)
    dec.append(time.perf_counter() - t0)
    assert np.array_equal(back, pixels), "JPEG XL round trip failed"
  return statistics.median(enc), statistics.median(dec), 8 * len(data) / pixels.size


def _megapixel_table(spec, label, photo, sizes, repeats, json_path) -> int:
  """Seconds per megapixel at each size, beside JPEG XL e7 (see the module doc)."""
  load = os.getloadavg()
  print(f"# bench_codec --megapixels: {label}, mirror-tiled photo, {repeats} repeat(s), "
        f"medians; load average {load[0]:.2f} at start on {os.cpu_count()} CPUs")
  header = (f"{'MP':>5}{'size':>11}{'bpsp':>7}{'enc s':>8}{'s/MP':>7}{'dec s':>8}{'s/MP':>7}"
            f"{'cpu e/d':>12}{'RSS MB':>8} | {'JXL e7 bpsp':>11}{'enc s/MP':>9}{'dec s/MP':>9}"
            f"{'load':>6}")
  print(header)
  print("-" * len(header))
  results = []
  for name in sizes:
    w, h = MP_SIZES[name]
    pixels = _mirror_tiled(photo, w, h)
    megapixels = w * h / 1e6
    r = _in_fresh_process(_mp_worker, spec, pixels, repeats)
    med = {k: statistics.median(x[k] for x in r["rows"]) for k in r["rows"][0]}
    jxl_enc, jxl_dec, jxl_bpsp = _jpegxl_times(pixels, repeats)
    row = {"megapixels": megapixels, "size": f"{w}x{h}", **med,
           "enc_s_per_mp": med["enc_s"] / megapixels, "dec_s_per_mp": med["dec_s"] / megapixels,
           "peak_rss_mb": r["peak_rss_mb"], "jpegxl_e7_bpsp": jxl_bpsp,
           "jpegxl_e7_enc_s_per_mp": jxl_enc / megapixels,
           "jpegxl_e7_dec_s_per_mp": jxl_dec / megapixels, "load_average": os.getloadavg()[0]}
    results.append(row)
    print(f"{megapixels:>5.2f}{row['size']:>11}{med['bpsp']:>7.3f}{med['enc_s']:>8.2f}"
          f"{row['enc_s_per_mp']:>7.2f}{med['dec_s']:>8.2f}{row['dec_s_per_mp']:>7.2f}"
          f"{med['enc_cpu_s']:>6.1f}/{med['dec_cpu_s']:<5.1f}{r['peak_rss_mb']:>8.0f} | "
          f"{jxl_bpsp:>11.3f}{row['jpegxl_e7_enc_s_per_mp']:>9.3f}"
          f"{row['jpegxl_e7_dec_s_per_mp']:>9.3f}{row['load_average']:>6.2f}", flush=True)
  by_size = {r["size"]: r for r in results}
  one = by_size.get("%dx%d" % MP_SIZES["1"])
  for r in results:
    if one is not None and r is not one:
      print(f"# {r['size']}: s/MP {r['enc_s_per_mp'] / one['enc_s_per_mp']:.2f}x (encode), "
            f"{r['dec_s_per_mp'] / one['dec_s_per_mp']:.2f}x (decode) that at 1 MP")
  print(f"# load average at end {os.getloadavg()[0]:.2f}")
  if json_path:
    with open(json_path, "w") as f:
      json.dump({"rows": results, "load_average": [load[0], os.getloadavg()[0]]}, f, indent=2)
  return 0


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


def _in_fresh_process(worker, *args):
  """worker(*args, queue) in a spawned process (its peak RSS its own) -> what it put."""
  ctx = mp.get_context("spawn")
  queue = ctx.Queue()
  proc = ctx.Process(target=worker, args=(*args, queue))
  proc.start()
  result = queue.get()
  proc.join()
  if "error" in result:
    raise RuntimeError(result["error"])
  return result


def _run_isolated(spec, crops, repeats):
  return _in_fresh_process(_worker, spec, crops, repeats)


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
  p.add_argument("--megapixels", default=None,
                 help=f"comma list of {','.join(MP_SIZES)}: seconds per megapixel of the default "
                      "model beside JPEG XL e7 instead of the crop table")
  p.add_argument("--mp_image", default="kodim23.png", help="photo for --megapixels")
  p.add_argument("--mp_repeats", type=int, default=1)
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

  if args.megapixels:
    sizes = args.megapixels.split(",")
    unknown = sorted(set(sizes) - set(MP_SIZES))
    if unknown:
      p.error(f"unknown --megapixels {unknown} (known: {', '.join(MP_SIZES)})")
    (label, spec), = [x for x in specs if x[0].startswith(("default", "cf32"))] or specs[:1]
    photo = images.read_image(os.path.join(args.data_dir, args.mp_image)).pixels
    return _megapixel_table(spec, label, photo, sizes, args.mp_repeats, args.json)

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
