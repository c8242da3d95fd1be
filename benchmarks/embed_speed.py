"""How fast `deepimage embed` is on this computer, next to orange3-imageanalytics.

On the same fresh images, one run measures: the anchor (orange3-imageanalytics'
local SqueezeNet, i.e. the LocalEmbedder behind ImageEmbedder(model="squeezenet"),
timing only its embedd_data call, model loading left out); ours, as a user runs
it: `python -m orangecontrib.deepimage.cli embed DIR --no-cache -o out.npy` in a
subprocess, default backend (auto = onnxruntime on a CPU) and --backend torch,
wall clock with start-up (median of --repeats) and the rate the CLI prints;
ceilings (best of 3): decoding alone (core.images.load_image to 227x227, 1 and 2
threads) and SqueezeNet alone (Embedder.embed_arrays, 32-image batches); with
--memory-images N, peak RSS of `deepimage embed` on N and on N/10 images, to show
memory does not grow with the number of images (streaming).

Images are distinct 640x480 JPEGs (quality 90), random crops of the photos in
../shared/data/photos (else tutorials/sample-photos), fixed seed, so no cache can
short-cut; all caches go to the temporary folder. Markdown tables go to stdout.

    make bench          # = python benchmarks/embed_speed.py
    python benchmarks/embed_speed.py --images 300 --anchor-images 100 --memory-images 20000
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
from importlib.metadata import version
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
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


# `deepimage embed` that also prints its own peak RSS. VmHWM belongs to the process's
# memory map, which exec replaces; ru_maxrss from wait4 would instead keep the high-water
# mark of the forked copy of this (torch-loaded) benchmark process.
CLI_WITH_PEAK = """import sys
from orangecontrib.deepimage.cli import main
code = main(sys.argv[1:])
hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')]
print('peak RSS', hwm[0] if hwm else 'nan', 'kB', file=sys.stderr)
sys.exit(code)
"""


def run_cli(folder: Path, out: Path, env: dict, extra=(), expect: "int | None" = None) -> dict:
    """`deepimage embed FOLDER --no-cache -o out.npy`: wall s, printed rate, peak RSS (MiB)."""
    cmd = [sys.executable, "-c", CLI_WITH_PEAK, "embed", str(folder),
           "--no-cache", "-o", str(out), *extra]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{text}")
    result = np.load(out, mmap_mode="r")
    rows = result.shape[0]
    if expect is not None and rows != expect:
        sys.exit(f"{' '.join(cmd)} embedded {rows} of {expect} images:\n{text}")
    found = re.search(r"([\d.]+) images/s", text)
    peak = re.search(r"peak RSS (\S+) kB", text)
    return {"wall": wall, "printed": float(found.group(1)) if found else float("nan"),
            "rss": float(peak.group(1)) / 1024 if peak else float("nan"),
            "matrix": result.nbytes / 2**20}


def anchor_rate(paths: list[str], env: dict) -> float:
    proc = subprocess.run([sys.executable, "-c", ANCHOR], input=json.dumps(paths), text=True,
                          capture_output=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"the anchor failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["embedded"] != len(paths):
        sys.exit(f"the anchor embedded {result['embedded']} of {len(paths)} images")
    return len(paths) / result["seconds"]


def decode_rates(paths: list[str], rounds: int = 3) -> tuple[float, float, np.ndarray]:
    """Best of ``rounds`` passes over all images, 1 thread and 2 threads."""
    from orangecontrib.deepimage.core.images import load_image
    single = double = 0.0
    with ThreadPoolExecutor(2) as pool:
        for _ in range(rounds):
            start = time.perf_counter()
            images = [load_image(p, (227, 227)) for p in paths]
            single = max(single, len(paths) / (time.perf_counter() - start))
            start = time.perf_counter()
            list(pool.map(lambda p: load_image(p, (227, 227)), paths))
            double = max(double, len(paths) / (time.perf_counter() - start))
    return single, double, np.stack((images * 32)[:32])


def network_rate(backend: str, batch: np.ndarray, rounds: int = 3, seconds: float = 2.0) -> float:
    """Best of ``rounds`` timings of repeated 32-image batches, after a warm-up call."""
    from orangecontrib.deepimage.core import Embedder
    embedder = Embedder("squeezenet", backend=backend, device="cpu", cache=False, batch_size=32)
    embedder.embed_arrays(batch)  # warm-up
    best = 0.0
    for _ in range(rounds):
        done, start = 0, time.perf_counter()
        while done < 2 * len(batch) or time.perf_counter() - start < seconds:
            embedder.embed_arrays(batch)
            done += len(batch)
        best = max(best, done / (time.perf_counter() - start))
    return best


def speed(args, tmp: Path, env: dict) -> float:
    """The speed table; returns the anchor's rate (median)."""
    load = os.getloadavg()[0]
    paths = make_images(tmp / "images", args.images)
    n, n_anchor = len(paths), min(args.anchor_images, len(paths))
    variants = {"onnx": (), "torch": ("--backend", "torch")}  # onnx: the default (auto)
    for extra in variants.values():  # untimed: the first run exports the ONNX model
        run_cli(PHOTO_DIRS[1], tmp / "warm.npy", env, extra)
    anchors, runs = [], {name: [] for name in variants}
    for r in range(args.repeats):  # interleaved, so that load from others hits all alike
        if n_anchor:
            log(f"anchor: orange3-imageanalytics SqueezeNet, {n_anchor} images, run {r + 1} ...")
            anchors.append(anchor_rate(paths[:n_anchor], env))
        for name, extra in variants.items():
            log(f"ours: deepimage embed ({name}), run {r + 1} of {args.repeats} ...")
            runs[name].append(run_cli(tmp / "images", tmp / "out.npy", env, extra, n))
    log("ceilings: decoding, then the network alone ...")
    single, double, batch = decode_rates(paths)
    net = {b: network_rate(b, batch) for b in ("onnx", "torch")}
    if not args.keep:
        shutil.rmtree(tmp / "images")

    import onnxruntime
    import torch
    print(f"\nMachine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}, Python "
          f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}, torch "
          f"{torch.__version__}, orange3-imageanalytics {version('Orange3-ImageAnalytics')}; "
          f"1-min load average {load:.1f} before, {os.getloadavg()[0]:.1f} after. Anchor and "
          f"ours: medians of {args.repeats} interleaved runs; ceilings: best of 3.\n")
    print("| what | images/s | vs anchor | runs (min-max) |\n|---|---:|---:|---|")
    anchor = statistics.median(anchors) if anchors else float("nan")

    def row(what: str, rates) -> None:
        rates = list(rates)
        spread = f"{min(rates):.1f}-{max(rates):.1f}" if len(rates) > 1 else ""
        rate = statistics.median(rates)
        print(f"| {what} | {rate:.1f} | {rate / anchor:.1f}x | {spread} |")

    row(f"anchor: orange3-imageanalytics local SqueezeNet, {n_anchor} images "
        "(embedding call only, model load excluded)", anchors or [anchor])
    for name, extra in variants.items():
        command = " ".join(("deepimage embed --no-cache",) + extra)
        row(f"ours: `{command}` ({name}), {n} images, wall clock incl. start-up",
            (n / r["wall"] for r in runs[name]))
        row("ours: same runs, rate the CLI prints", (r["printed"] for r in runs[name]))
    row("ceiling: decode only (load_image 227x227), 1 thread", [single])
    row("ceiling: decode only, 2 threads", [double])
    for backend, rate in net.items():
        row(f"ceiling: SqueezeNet network only ({backend}, batch 32)", [rate])
    wall = statistics.median(n / r["wall"] for r in runs["onnx"]) / anchor
    printed = statistics.median(r["printed"] for r in runs["onnx"]) / anchor
    print(f"\nTarget: ours >= 12x the anchor with SqueezeNet on CPU. Default backend, {n} "
          f"images: {wall:.1f}x by wall clock ({'met' if wall >= 12 else 'NOT met'}), "
          f"{printed:.1f}x by the printed rate ({'met' if printed >= 12 else 'NOT met'}).")
    for name in variants:  # wall = fixed cost + n / printed rate
        fixed = statistics.median(r["wall"] - n / r["printed"] for r in runs[name])
        print(f"Fixed cost of one `deepimage embed` run ({name}: start-up, model load, "
              f"writing): {fixed:.1f} s.")
    return anchor


def memory_check(count: int, tmp: Path, env: dict, anchor: float) -> None:
    folder, tenth = tmp / "memory", tmp / "memory-tenth"
    make_images(folder, count)
    tenth.mkdir()
    for p in sorted(folder.glob("*.jpg"))[: count // 10]:
        os.link(p, tenth / p.name)
    rows = []
    for where, k in ((tenth, count // 10), (folder, count)):
        log(f"memory: deepimage embed on {k} images ...")
        rows.append((k, run_cli(where, tmp / "out.npy", env, (), k)))
    print("\n| memory check: `deepimage embed --no-cache -o out.npy` | images/s (wall) | "
          "vs anchor | images/s (printed) | peak RSS (MiB) | result matrix (MiB) |\n"
          "|---|---:|---:|---:|---:|---:|")
    for k, r in rows:
        print(f"| {k} images | {k / r['wall']:.1f} | {k / r['wall'] / anchor:.1f}x | "
              f"{r['printed']:.1f} | {r['rss']:.0f} | {r['matrix']:.1f} |")
    grow, more = rows[1][1]["rss"] - rows[0][1]["rss"], count - count // 10
    print(f"\nPeak RSS grew by {grow:.0f} MiB for {more} more images ({grow * 1024 / more:.1f} "
          f"KiB per image; one decoded 227x227 image is {227 * 227 * 3 / 1024:.0f} KiB).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="images for the speed runs")
    parser.add_argument("--anchor-images", type=int, default=100,
                        help="of those, how many the anchor embeds (it is slow; 0 skips it)")
    parser.add_argument("--memory-images", type=int, default=0,
                        help="images for the memory check (0 skips it; the README uses 20000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs of the anchor and of each CLI variant")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="deepimage-bench-"))
    env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(tmp / "cache"), XDG_CACHE_HOME=str(tmp / "xdg"),
               QT_QPA_PLATFORM="offscreen")
    os.environ["DEEPIMAGE_CACHE_DIR"] = env["DEEPIMAGE_CACHE_DIR"]  # for the in-process ceilings
    try:
        anchor = speed(args, tmp, env)
        if args.memory_images:
            memory_check(args.memory_images, tmp, env, anchor)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
