"""What Ray costs on one small computer: `deepimage embed` locally vs `--ray local`.

On the same fresh images (embed_speed.py's: distinct 640x480 JPEGs, fixed seed), one
run times, interleaved --repeats times, as subprocesses exactly as a user runs them:
  local: `python -m orangecontrib.deepimage.cli embed DIR --no-cache -o out.npy`
  ray:   the same with `--ray local` (starts Ray on this computer, one actor pool)
Wall clock includes start-up (for Ray: starting Ray, its actors and their networks)
and writing; "printed" is the rate the CLI prints (for Ray: from the first path sent
to the last vector back, actors' start-up included). The two .npy files must be equal.

    python benchmarks/ray_speed.py --images 100 --repeats 2
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_speed import log, make_images, run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--actors", type=int, default=None,
                        help="--actors for the Ray runs (default: the CLI's)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="deepimage-ray-bench-"))
    env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(tmp / "cache"))
    try:
        folder = tmp / "images"
        make_images(folder, args.images)
        ray_extra = ["--ray", "local"] + (["--actors", str(args.actors)] if args.actors else [])
        run_cli(folder, tmp / "warm.npy", env, expect=args.images)  # exports the ONNX model
        runs: dict[str, list[dict]] = {"local": [], "ray": []}
        for repeat in range(args.repeats):
            for name, extra in (("local", []), ("ray", ray_extra)):
                log(f"run {repeat + 1}/{args.repeats}: {name}")
                runs[name].append(run_cli(folder, tmp / f"{name}.npy", env, extra,
                                          expect=args.images))
        same = np.array_equal(np.load(tmp / "local.npy"), np.load(tmp / "ray.npy"))
        load = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Machine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}, "
          f"Python {platform.python_version()}, ray {version('ray')}, onnxruntime "
          f"{version('onnxruntime') if _has('onnxruntime') else version('onnxruntime-gpu')}; "
          f"1-min load average {load:.1f} after. Medians of {args.repeats} interleaved runs, "
          f"{args.images} images, `--no-cache`, default backend (onnx on the CPU).\n")
    print("| what | wall s | images/s (wall) | images/s (printed) | vs local (wall) |")
    print("|---|---:|---:|---:|---:|")
    local_wall = statistics.median(r["wall"] for r in runs["local"])
    for name, label in (("local", "`deepimage embed`"),
                        ("ray", f"`deepimage embed {' '.join(ray_extra)}`")):
        wall = statistics.median(r["wall"] for r in runs[name])
        printed = statistics.median(r["printed"] for r in runs[name])
        print(f"| {label} | {wall:.1f} | {args.images / wall:.1f} | {printed:.1f} | "
              f"{local_wall / wall:.2f}x |")
    print(f"\nVectors of the two runs identical: {same}.")


def _has(name: str) -> bool:
    try:
        version(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
