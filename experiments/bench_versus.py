"""Codec speed of this checkout against another commit, measured in one run (interleaved).

  python experiments/bench_versus.py --baseline=REV [--rounds 3] [--images kodim23.png]

A shared, noisy machine makes absolute seconds meaningless across runs, so both versions are
timed in the same run, alternating (A B B A A B ...), each round a fresh
`experiments/bench_codec.py --configs default` process of that version with ITS shipped model
(so "before" is the previous release's model, "after" this one's). The baseline is checked out
as a git worktree (`../bench_baseline_<rev>`, reused if present) and runs with this venv. Prints
the medians of encode / decode wall and CPU seconds per crop size and the after / before ratios,
with the load average.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worktree(rev: str) -> str:
  sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout.strip()
  path = os.path.join(os.path.dirname(ROOT), f"bench_baseline_{sha}")
  if not os.path.isdir(path):
    subprocess.run(["git", "worktree", "add", "--detach", path, sha], cwd=ROOT, check=True,
                   capture_output=True)
  return path


def _bench(tree: str, images: str, data_dir: str) -> dict:
  with tempfile.NamedTemporaryFile(suffix=".json") as out:
    env = dict(os.environ, PYTHONPATH=tree)
    subprocess.run([sys.executable, os.path.join(tree, "experiments", "bench_codec.py"),
                    "--configs", "default", "--images", images, "--repeats", "1",
                    "--data_dir", data_dir, "--json", out.name],
                   cwd=tree, env=env, check=True, capture_output=True, text=True)
    with open(out.name) as f:
      return json.load(f)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--baseline", required=True, help="git revision to compare against")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--images", default="kodim23.png")
  p.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data", "kodak"))
  args = p.parse_args(argv)
  trees = {"before": _worktree(args.baseline), "after": ROOT}
  data_dir = os.path.abspath(args.data_dir)
  load0 = os.getloadavg()
  rows = {k: [] for k in trees}
  for r in range(args.rounds):
    order = ("before", "after") if r % 2 == 0 else ("after", "before")
    for side in order:
      rows[side].extend(_bench(trees[side], args.images, data_dir)["rows"])
      print(f"round {r + 1}/{args.rounds}: {side} done (load {os.getloadavg()[0]:.2f})",
            flush=True)
  print(f"# bench_versus: {args.baseline} (before) vs this checkout (after), {args.rounds} "
        f"interleaved rounds, medians; load average {load0[0]:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end, {os.cpu_count()} CPUs")
  keys = ("enc_total_s", "dec_total_s", "enc_cpu_s", "dec_cpu_s", "bpsp")
  print(f"{'size':>9} {'':>7}" + "".join(f"{k:>13}" for k in keys))
  for size in sorted({row["size"] for row in rows["after"]}):
    med = {side: {k: statistics.median(x[k] for x in rows[side] if x["size"] == size)
                  for k in keys} for side in trees}
    for side in trees:
      print(f"{size:>9} {side:>7}" + "".join(f"{med[side][k]:>13.3f}" for k in keys))
    print(f"{size:>9} {'ratio':>7}" + "".join(
        f"{med['after'][k] / med['before'][k]:>13.3f}" for k in keys))
  return 0


if __name__ == "__main__":
  sys.exit(main())
