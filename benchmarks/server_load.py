"""Load on the embedding server over loopback, next to local `deepimage embed`.

One run, same images: N single-image requests in Orange's protocol (POST
/image/squeezenet, raw JPEG) at a fixed concurrency against three `deepimage serve`
processes (SqueezeNet, CPU), all started up front: dynamic batching with the
defaults (at most 4 images per call on a CPU, no waiting), batching off
(--no-batching), and dynamic batching with --max-batch 64 (the GPU default). The N
requests go in R rounds of N/R; in each round every server gets the same slice in
turn (the order alternates), so a shared machine's changing load hits all three
alike. Then local batched `deepimage embed --no-cache` on the same files. Reports
throughput, p50/p99 latency, errors, images per network call, the batched/off
ratio of every round and the load average. The load generator (httpx, asyncio)
runs on the same computer as the servers, so they share its cores.

Images: N distinct JPEGs, random crops of ../shared/data/photos (else
tutorials/sample-photos), resized to 227x227 and saved at PIL's default quality
(75), as Orange's client would send them; fixed seed; caches in a temp folder.

    python benchmarks/server_load.py                 # N=2000, concurrency 32, 4 rounds
    python benchmarks/server_load.py --requests 500 --rounds 2
    python benchmarks/server_load.py --requests 400 --rounds 4 --baseline /tmp/main-copy

--baseline DIR adds a fourth server, dynamic batching with the defaults, running the
add-on's code from another checkout DIR (e.g. `git archive main | tar -x -C DIR`):
this tree and that one, side by side in the same rounds, for before/after comparisons.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from orangecontrib.deepimage.core.loopback import http_client, no_proxy_mounts
from orangecontrib.deepimage.server.launch import ServerNotReady, ServerProcess, start_server

REPO = Path(__file__).resolve().parents[1]
PHOTO_DIRS = (REPO.parent / "shared" / "data" / "photos", REPO / "tutorials" / "sample-photos")
SEED = 20261123


def make_images(folder: Path, count: int, size: int = 227) -> list[bytes]:
    photos = next((sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg",
                                                                          ".png"))
                   for d in PHOTO_DIRS if d.is_dir()), None)
    if not photos:
        sys.exit("no photos found in " + ", ".join(map(str, PHOTO_DIRS)))
    sources = [Image.open(p).convert("RGB") for p in photos]
    rng = random.Random(SEED)
    data, seen = [], set()
    while len(data) < count:
        image = rng.choice(sources)
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = image.crop((left, top, left + cw, top + ch)).resize((size, size),
                                                                     Image.LANCZOS)
        buf = io.BytesIO()
        crop.save(buf, "JPEG")  # PIL's default quality, like Orange's client
        blob = buf.getvalue()
        if blob in seen:
            continue
        seen.add(blob)
        (folder / f"img{len(data):05d}.jpg").write_bytes(blob)
        data.append(blob)
    return data


def start(extra: list[str], env: dict, log: Path) -> ServerProcess:
    """A `deepimage serve` (SqueezeNet on the CPU) on a free loopback port, once ready."""
    try:
        return start_server("--models", "squeezenet", "--device", "cpu", "--log-level",
                            "warning", *extra, env=env, log_file=log)
    except ServerNotReady as exc:
        sys.exit(str(exc))


async def load(base: str, images: list[bytes], concurrency: int) -> dict:
    latencies, errors = [], []
    todo = iter(range(len(images)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, timeout=180, limits=limits,
                                 mounts=no_proxy_mounts(base)) as client:
        async def worker():
            for i in todo:
                start = time.perf_counter()
                try:
                    response = await client.post(
                        f"/image/squeezenet?machine=bench&session=1&retry=1",
                        content=images[i], headers={"Content-Type": "image/jpeg"})
                    ok = response.status_code == 200 and len(response.json()["embedding"]) == 512
                    if not ok:
                        errors.append(f"{response.status_code}: {response.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "errors": errors, "latencies": latencies}


def batch_counts(base: str) -> tuple[float, float]:
    """(images, network calls) so far, from the server's /metrics."""
    values = {}
    with http_client(base) as client:
        text = client.get(base + "/metrics").text
    for line in text.splitlines():
        for name in ("deepimage_batch_size_sum", "deepimage_batch_size_count"):
            if line.startswith(name + "{"):
                values[name] = float(line.split()[-1])
    return (values.get("deepimage_batch_size_sum", 0.0),
            values.get("deepimage_batch_size_count", 0.0))


BASELINE_LOADER = """import importlib.util, sys
def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path + "/__init__.py",
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
import orangecontrib
_load("orangecontrib.deepimage", {root!r} + "/orangecontrib/deepimage")
_load("orangecontrib.deepimage.server", {root!r} + "/server")
"""


def baseline_env(env: dict, root: Path, folder: Path) -> dict:
    """``env`` for a server that runs the add-on from the checkout ``root``: a
    sitecustomize loads its packages before the installed (editable) ones."""
    shim = folder / "baseline-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BASELINE_LOADER.format(root=str(root.resolve())))
    return dict(env, PYTHONPATH=str(shim))


def run_servers(configs: dict, images, warmup, concurrency, rounds, env, folder) -> dict:
    """Every server in ``configs`` ({label: extra options, or (options, environment)})
    gets every slice, in turn."""
    servers = {}
    try:
        for label, extra in configs.items():
            extra, server_env = extra if isinstance(extra, tuple) else (extra, env)
            servers[label] = start(extra, server_env, folder / f"server-{label}.log")
        counts = {}
        for label, server in servers.items():
            # untimed: threads, arenas, connections
            asyncio.run(load(server.url, warmup, concurrency))
            counts[label] = batch_counts(server.url)
        results = {label: {"seconds": 0.0, "errors": [], "latencies": [], "rounds": []}
                   for label in configs}
        size = -(-len(images) // rounds)
        for r in range(rounds):
            part = images[r * size:(r + 1) * size]
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for label in order:
                print(f"  round {r + 1}/{rounds}: {label} ...", file=sys.stderr)
                got = asyncio.run(load(servers[label].url, part, concurrency))
                result = results[label]
                result["seconds"] += got["seconds"]
                result["errors"] += got["errors"]
                result["latencies"] += got["latencies"]
                result["rounds"].append(len(part) / got["seconds"])
        for label, server in servers.items():
            result = results[label]
            latencies = sorted(result["latencies"])
            result["rate"] = len(latencies) / result["seconds"]
            result["p50"] = statistics.median(latencies) * 1000
            result["p99"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
            done, calls = batch_counts(server.url)
            before_images, before_calls = counts[label]
            result["batches"] = (f"{(done - before_images) / (calls - before_calls):.1f} images "
                                 f"per network call" if calls > before_calls else "n/a")
    finally:
        for server in servers.values():
            server.process.terminate()  # all at once, then wait for each
        for server in servers.values():
            server.stop(timeout=30)
    return results


def run_local(folder: Path, env: dict) -> dict:
    out = folder / "out.npy"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", "embed",
                           str(folder / "images"), "--no-cache", "--device", "cpu", "-o",
                           str(out)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    printed = re.search(r"([\d.]+) images/s", proc.stderr)
    return {"seconds": seconds, "printed": float(printed.group(1)) if printed else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also serve, side by side, the code of another checkout")
    parser.add_argument("--devices", metavar="A,B",
                        help="instead: one network worker (on the first device listed) against "
                             "one per device listed (e.g. cpu,cpu), side by side")
    args = parser.parse_args()
    if args.devices:
        return compare_devices(args)
    with tempfile.TemporaryDirectory(prefix="deepimage-server-bench-") as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(folder / "cache"), DEEPIMAGE_OFFLINE="1")
        print(f"making {args.requests} images ...", file=sys.stderr)
        images = make_images(folder / "images", args.requests)
        warmup = images[:64]
        load_before = os.getloadavg()[0]
        # one untimed local run exports the ONNX network into the shared cache folder
        subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", "embed",
                        str(folder / "images" / "img00000.jpg"), "--no-cache", "-q", "-o",
                        str(folder / "warm.npy")], env=env, check=True)
        print("servers: batching on (defaults), off, --max-batch 64 ...", file=sys.stderr)
        configs = {"batched": [], "off": ["--no-batching"], "max-batch 64": ["--max-batch", "64"]}
        if args.baseline:
            configs["baseline"] = ([], baseline_env(env, args.baseline, folder))
        results = run_servers(configs, images, warmup, args.concurrency, args.rounds, env,
                              folder)
        batched, single, big = results["batched"], results["off"], results["max-batch 64"]
        load_servers = os.getloadavg()[0]
        print("local deepimage embed ...", file=sys.stderr)
        local = run_local(folder, env)
        load_after = os.getloadavg()[0]

    n = args.requests
    local_wall = n / local["seconds"]
    print(f"Machine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}, Python "
          f"{platform.python_version()}; 1-min load average {load_before:.1f} before, "
          f"{load_servers:.1f} after the servers, {load_after:.1f} after the local run. {n} "
          f"requests per server in {args.rounds} interleaved rounds, concurrency "
          f"{args.concurrency}, SqueezeNet on CPU (onnxruntime), loopback; the load generator "
          f"shares the cores.\n")
    print("| what | images/s | vs local (wall) | p50 ms | p99 ms | errors | batches |")
    print("|---|---:|---:|---:|---:|---:|---|")
    rows = [("server, dynamic batching (Orange protocol)", batched),
            ("server, batching off (`--no-batching`)", single),
            ("server, dynamic batching, `--max-batch 64`", big)]
    if args.baseline:
        rows.append((f"baseline `{args.baseline}`, dynamic batching", results["baseline"]))
    for label, result in rows:
        print(f"| {label} | {result['rate']:.1f} | {result['rate'] / local_wall:.0%} | "
              f"{result['p50']:.0f} | {result['p99']:.0f} | {len(result['errors'])} | "
              f"{result['batches']} |")
    print(f"| local `deepimage embed --no-cache`, wall clock incl. start-up | {local_wall:.1f} "
          f"| 100% | | | 0 | 16 per call |")
    print(f"| local, rate the CLI prints | {local['printed']:.1f} | "
          f"{local['printed'] / local_wall:.0%} | | | | |")
    print(f"\nBatching on vs off: {batched['rate'] / single['rate']:.2f}x the throughput "
          f"(--max-batch 64 vs off: {big['rate'] / single['rate']:.2f}x). "
          f"Target (>= 80% of local, zero errors): "
          f"{batched['rate'] / local_wall:.0%} of local by wall clock, "
          f"{batched['rate'] / local['printed']:.0%} of the rate local prints; "
          f"{len(batched['errors'])} errors.")
    print("Batched/off throughput in each round: " + ", ".join(
        f"{a / b:.2f}" for a, b in zip(batched["rounds"], single["rounds"])) +
          "; --max-batch 64/off: " + ", ".join(
        f"{a / b:.2f}" for a, b in zip(big["rounds"], single["rounds"])) + ".")
    if args.baseline:
        print("This tree/baseline throughput in each round: " + ", ".join(
            f"{a / b:.2f}" for a, b in zip(batched["rounds"], results["baseline"]["rounds"]))
              + ".")
    for result in results.values():
        for error in result["errors"][:5]:
            print(f"  error: {error}")


def compare_devices(args) -> None:
    """One worker (on A) against `--devices A,B` (one worker per device), the same rounds."""
    with tempfile.TemporaryDirectory(prefix="deepimage-server-bench-") as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(folder / "cache"), DEEPIMAGE_OFFLINE="1")
        images = make_images(folder / "images", args.requests)
        subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", "embed",
                        str(folder / "images" / "img00000.jpg"), "--no-cache", "-q", "-o",
                        str(folder / "warm.npy")], env=env, check=True)
        load_before = os.getloadavg()[0]
        many = f"--devices {args.devices}"
        first = args.devices.split(",")[0]
        results = run_servers({"one worker": ["--devices", first],
                               many: ["--devices", args.devices]}, images,
                              images[:64], args.concurrency, args.rounds, env, folder)
        load_after = os.getloadavg()[0]
    print(f"Machine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}; 1-min "
          f"load average {load_before:.1f} before, {load_after:.1f} after. {args.requests} "
          f"requests per server in {args.rounds} interleaved rounds, concurrency "
          f"{args.concurrency}, SqueezeNet (onnxruntime), loopback.\n")
    print("| server | images/s | p50 ms | p99 ms | errors | batches |")
    print("|---|---:|---:|---:|---:|---|")
    for label, result in results.items():
        print(f"| {label} | {result['rate']:.1f} | {result['p50']:.0f} | {result['p99']:.0f} "
              f"| {len(result['errors'])} | {result['batches']} |")
    one, two = results["one worker"], results[many]
    print(f"\n{many} vs one worker: {two['rate'] / one['rate']:.2f}x the throughput; per "
          f"round: " + ", ".join(f"{a / b:.2f}" for a, b in zip(two["rounds"], one["rounds"]))
          + ".")


if __name__ == "__main__":
    main()
