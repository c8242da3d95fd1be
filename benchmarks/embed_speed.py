"""How fast `deepimage embed` is on this computer, next to orange3-imageanalytics.

One run measures, on the same freshly made images:

* the anchor: orange3-imageanalytics' local SqueezeNet (its LocalEmbedder, what
  ImageEmbedder(model="squeezenet") uses), in a subprocess, timing only its
  embedd_data call (model loading left out, which flatters the anchor);
* ours: `python -m orangecontrib.deepimage.cli embed DIR --no-cache -o out.npy`
  as a subprocess, with the default backend (auto: onnxruntime on a CPU) and with
  --backend torch; wall clock including process start-up (median of --repeats
  runs), and the rate the CLI prints in its summary;
* ceilings: decoding alone (core.images.load_image at 227x227, 1 and 2 threads)
  and SqueezeNet alone (Embedder.embed_arrays on 32-image uint8 batches);
* with --memory-images N: peak RSS of `deepimage embed` on N images and on N/10,
  to show memory does not grow with the number of images (streaming).

Images are distinct 640x480 JPEGs (quality 90), random crops of the photos in
../shared/data/photos (or tutorials/sample-photos), made with a fixed seed, so
no cache can short-cut. Every cache goes to the temporary folder.

    make bench                       # = python benchmarks/embed_speed.py
    python benchmarks/embed_speed.py --images 300 --anchor-images 100 --memory-images 20000

Prints Markdown tables on stdout (progress on stderr).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PHOTO_DIRS = (REPO.parent / "shared" / "data" / "photos", REPO / "tutorials" / "sample-photos")
SEED = 20261122
CHUNK = 250  # images per generating task

ANCHOR = r"""
import json, sys, time
from orangecontrib.imageanalytics.image_embedder import MODELS
from orangecontrib.imageanalytics.local_embedder import LocalEmbedder
paths = json.load(sys.stdin)
embedder = LocalEmbedder("squeezenet", MODELS["squeezenet"])
embedder._cache.clear_cache()  # its cache is in a fresh XDG_CACHE_HOME anyway
start = time.perf_counter()
vectors = embedder.embedd_data(paths)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "embedded": sum(v is not None for v in vectors)}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def source_photos() -> list[Path]:
    for folder in PHOTO_DIRS:
        photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if photos:
            return photos
    sys.exit(f"no photos in {' or '.join(map(str, PHOTO_DIRS))}")


def _make_chunk(folder: str, start: int, stop: int) -> list[str]:
    """Images start..stop-1: a random crop (60-100% of each side), resized to 640x480."""
    photos = [Image.open(p).convert("RGB") for p in source_photos()]
    digests = []
    for i in range(start, stop):
        rng = random.Random(f"{SEED}-{i}")
        photo = rng.choice(photos)
        w, h = photo.size
        cw, ch = round(w * rng.uniform(0.6, 1.0)), round(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = photo.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.Resampling.BILINEAR)
        path = os.path.join(folder, f"img_{i:06d}.jpg")
        image.save(path, "JPEG", quality=90)
        with open(path, "rb") as f:
            digests.append(hashlib.blake2b(f.read(), digest_size=16).hexdigest())
    return digests


def make_images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        futures = [pool.submit(_make_chunk, str(folder), i, min(i + CHUNK, n))
                   for i in range(0, n, CHUNK)]
        digests = [d for f in futures for d in f.result()]
    if len(set(digests)) != n:
        sys.exit(f"only {len(set(digests))} of {n} generated images are distinct")
    log(f"made {n} distinct 640x480 JPEGs in {folder} ({time.perf_counter() - start:.0f} s)")
    return sorted(str(p) for p in folder.glob("*.jpg"))


def run_cli(folder: Path, out: Path, env: dict, extra=(), expect: "int | None" = None) -> dict:
    """`deepimage embed FOLDER --no-cache -o out.npy`: wall s, printed rate, peak RSS (MiB)."""
    cmd = [sys.executable, "-m", "orangecontrib.deepimage.cli", "embed", str(folder),
           "--no-cache", "-o", str(out), *extra]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{text}")
    rows = np.load(out, mmap_mode="r").shape[0]
    if expect is not None and rows != expect:
        sys.exit(f"{' '.join(cmd)} embedded {rows} of {expect} images:\n{text}")
    found = re.search(r"([\d.]+) images/s", text)
    return {"wall": wall, "printed": float(found.group(1)) if found else float("nan"),
            "rss": usage.ru_maxrss / 1024, "rows": rows}


def anchor_rate(paths: list[str], env: dict) -> float:
    proc = subprocess.run([sys.executable, "-c", ANCHOR], input=json.dumps(paths), text=True,
                          capture_output=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"the anchor failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["embedded"] != len(paths):
        sys.exit(f"the anchor embedded {result['embedded']} of {len(paths)} images")
    return len(paths) / result["seconds"]


def decode_rates(paths: list[str]) -> tuple[float, float, np.ndarray]:
    from orangecontrib.deepimage.core.images import load_image
    start = time.perf_counter()
    images = [load_image(p, (227, 227)) for p in paths]
    single = len(paths) / (time.perf_counter() - start)
    with ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(lambda p: load_image(p, (227, 227)), paths))
        double = len(paths) / (time.perf_counter() - start)
    return single, double, np.stack((images * 32)[:32])


def network_rate(backend: str, batch: np.ndarray, min_seconds: float = 3.0) -> float:
    from orangecontrib.deepimage.core import Embedder
    embedder = Embedder("squeezenet", backend=backend, device="cpu", cache=False, batch_size=32)
    embedder.embed_arrays(batch)  # warm-up
    done, start = 0, time.perf_counter()
    while done < 3 * len(batch) or time.perf_counter() - start < min_seconds:
        embedder.embed_arrays(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="images for the speed runs")
    parser.add_argument("--anchor-images", type=int, default=100,
                        help="of those, how many the anchor embeds (it is slow; 0 skips it)")
    parser.add_argument("--memory-images", type=int, default=0,
                        help="images for the memory check (0 skips it; the README uses 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each CLI variant")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="deepimage-bench-"))
    env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(tmp / "cache"), XDG_CACHE_HOME=str(tmp / "xdg"),
               QT_QPA_PLATFORM="offscreen")
    os.environ["DEEPIMAGE_CACHE_DIR"] = env["DEEPIMAGE_CACHE_DIR"]  # for the in-process ceilings
    try:
        paths = make_images(tmp / "images", args.images)
        n_anchor = min(args.anchor_images, len(paths))
        anchor = float("nan")
        if n_anchor:
            log(f"anchor: orange3-imageanalytics SqueezeNet on {n_anchor} images ...")
            anchor = anchor_rate(paths[:n_anchor], env)

        variants = {"onnx": [], "torch": []}
        for name in variants:  # untimed: the first run exports the ONNX model, warms the disk cache
            run_cli(PHOTO_DIRS[1], tmp / "warm.npy", env, ("--backend", "auto" if name == "onnx" else name))
        for r in range(args.repeats):
            for name, runs in variants.items():
                log(f"ours: deepimage embed ({name}), run {r + 1} of {args.repeats} ...")
                extra = () if name == "onnx" else ("--backend", "torch")
                runs.append(run_cli(tmp / "images", tmp / "out.npy", env, extra, len(paths)))

        log("ceilings: decoding, then the network alone ...")
        single, double, batch = decode_rates(paths)
        net = {b: network_rate(b, batch) for b in ("onnx", "torch")}

        def row(what: str, rate: float) -> str:
            return f"| {what} | {rate:.1f} | {rate / anchor:.1f}x |"

        n = len(paths)
        print(f"\nMachine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, "
              f"Python {platform.python_version()}, orange3-imageanalytics "
              f"{_version('Orange3-ImageAnalytics')}, onnxruntime "
              f"{_version('onnxruntime', 'onnxruntime-gpu')}, torch {_version('torch')}. "
              f"Ours: medians of {args.repeats} CLI runs.\n")
        print("| what | images/s | vs anchor |\n|---|---:|---:|")
        print(row(f"anchor: orange3-imageanalytics local SqueezeNet, {n_anchor} images "
                  "(embedding call only)", anchor))
        for name, runs in variants.items():
            flag = "" if name == "onnx" else " --backend torch"
            print(row(f"ours: `deepimage embed --no-cache{flag}` ({name}), {n} images, "
                      "wall clock incl. start-up", statistics.median(n / r["wall"] for r in runs)))
            print(row("ours: same, rate the CLI prints", statistics.median(r["printed"] for r in runs)))
        print(row("ceiling: decode only (load_image 227x227), 1 thread", single))
        print(row("ceiling: decode only, 2 threads", double))
        for b, rate in net.items():
            print(row(f"ceiling: SqueezeNet network only ({b}, batch 32)", rate))
        best = statistics.median(n / r["wall"] for r in variants["onnx"]) / anchor
        print(f"\nTarget: ours >= 12x the anchor with SqueezeNet on CPU. Measured (default "
              f"backend, wall clock): {best:.1f}x -> {'met' if best >= 12 else 'NOT met'}.")

        if args.memory_images:
            shutil.rmtree(tmp / "images")
            big = args.memory_images
            make_images(tmp / "memory", big)
            small_dir = tmp / "memory-tenth"
            small_dir.mkdir()
            for p in sorted((tmp / "memory").glob("*.jpg"))[: big // 10]:
                os.link(p, small_dir / p.name)
            rows = []
            for folder, count in ((small_dir, big // 10), (tmp / "memory", big)):
                log(f"memory: deepimage embed on {count} images ...")
                rows.append((count, run_cli(folder, tmp / "out.npy", env, (), count)))
            print("\n| memory check: `deepimage embed --no-cache -o out.npy` | images/s (wall) "
                  "| peak RSS (MiB) | output matrix (MiB) |\n|---|---:|---:|---:|")
            for count, r in rows:
                print(f"| {count} images | {count / r['wall']:.1f} | {r['rss']:.0f} | "
                      f"{count * 1000 * 4 / 2**20:.0f} |")
            grow = rows[1][1]["rss"] - rows[0][1]["rss"]
            print(f"\nPeak RSS grew by {grow:.0f} MiB for {big - big // 10} more images "
                  f"({grow * 1024 / (big - big // 10):.1f} KiB per image; a decoded 227x227 "
                  f"image alone is {227 * 227 * 3 / 1024:.0f} KiB).")
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _version(*dists: str) -> str:
    for dist in dists:
        try:
            return version(dist)
        except Exception:
            pass
    return "?"


if __name__ == "__main__":
    main()
