"""Peak memory of decoding big lab images: the decoder before and after issue 11.

Each measurement runs in its own Python process, which decodes N copies of one file
at once (N threads, as the embedding pipeline and the server do) to 227 x 227, the
way embedding does. It reports what decoding added to the process's peak RSS (VmHWM,
reset with /proc/self/clear_refs after imports and reading the file) and what stays
resident afterwards (VmRSS). "before" is core/images.py as it was at --old-rev,
loaded from git; "after" is the working tree's. Linux only.

    python benchmarks/decode_memory.py                 # markdown table on stdout
    python benchmarks/decode_memory.py --old-rev c2ddbf5 --repeats 1
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OLD_REV = "c2ddbf5"  # the commit before the decoder shrank before converting

CHILD = textwrap.dedent(r'''
    import gc, importlib.util, sys, time
    from concurrent.futures import ThreadPoolExecutor

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # MiB
    module_file, image_file, copies, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if module_file == "new":
        from orangecontrib.deepimage.core import images
    else:
        spec = importlib.util.spec_from_file_location("old_images", module_file)
        images = sys.modules["old_images"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(images)
    kwargs = {}
    if budget:
        from orangecontrib.deepimage.core.budget import PixelBudget
        kwargs["budget"] = PixelBudget(budget)
    data = open(image_file, "rb").read()
    images.decode_image(data[:0] or open(sys.argv[5], "rb").read(), (227, 227))  # warm-up
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = status("VmRSS")
    start = time.perf_counter()
    with ThreadPoolExecutor(copies) as pool:
        out = list(pool.map(lambda _: images.decode_image(data, (227, 227), **kwargs),
                            range(copies)))
    seconds = time.perf_counter() - start
    assert all(o.shape == (227, 227, 3) for o in out)
    del out
    gc.collect()
    print(status("VmHWM") - base, status("VmRSS") - base, seconds)
''')


def make_images(folder: Path) -> dict[str, Path]:
    """The test files: the issue's 16-bit zeros PNG, a 4-channel 16-bit TIFF, a photo."""
    import tifffile
    files = {}
    path = folder / "zeros16.png"
    Image.new("I;16", (7000, 7000), 0).save(path)
    files["7000x7000 16-bit grey PNG of zeros"] = path
    path = folder / "cells4ch.tif"
    rng = np.random.default_rng(0)
    planes = np.zeros((4, 4000, 4000), np.uint16)
    planes[:, ::50, ::50] = rng.integers(0, 4000, planes[:, ::50, ::50].shape)
    tifffile.imwrite(path, planes, imagej=True, metadata={"axes": "CYX"}, compression="zlib")
    files["4000x4000 4-channel 16-bit ImageJ TIFF"] = path
    path = folder / "photo.jpg"
    noise = rng.integers(0, 256, (750, 1000, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((6000, 4500), Image.Resampling.BILINEAR).save(path, quality=90)
    files["6000x4500 JPEG photo"] = path
    path = folder / "rgba.png"
    Image.fromarray(noise[:, :, :1].repeat(4, axis=2)).resize(
        (4000, 4000), Image.Resampling.NEAREST).save(path)
    files["4000x4000 RGBA PNG"] = path
    warm = folder / "warm.png"
    Image.new("RGB", (300, 300), (1, 2, 3)).save(warm)
    return files, warm


def measure(module: str, image: Path, copies: int, budget: int, warm: Path,
            repeats: int) -> "tuple[float, float, float] | str":
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", CHILD, module, str(image), str(copies),
                               str(budget), str(warm)], capture_output=True, text=True,
                              cwd=ROOT)
        if done.returncode:
            return done.stderr.strip().splitlines()[-1][:80]
        runs.append(tuple(float(x) for x in done.stdout.split()))
    return tuple(float(np.median([r[i] for r in runs])) for i in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=int, default=100_000_000,
                        help="pixels of the PixelBudget in the 'after, with budget' rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as tmp:
        tmp = Path(tmp)
        old = tmp / "old_images.py"
        old.write_bytes(subprocess.run(
            ["git", "show", f"{args.old_rev}:orangecontrib/deepimage/core/images.py"],
            cwd=ROOT, check=True, capture_output=True).stdout)
        files, warm = make_images(tmp)
        print(f"Machine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}, "
              f"Python {platform.python_version()}, Pillow {Image.__version__}, numpy "
              f"{np.__version__}; before = core/images.py at {args.old_rev}; median of "
              f"{args.repeats} run(s); MiB over the RSS before decoding.\n")
        print("| image (file size) | at once | before: peak added | before: stays "
              "| after: peak added | after: stays | after, budget "
              f"{args.budget / 1e6:g} MP: peak added | seconds before / after / budget |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for name, path in files.items():
            for copies in (1, 4):
                print(f"  {name} x{copies}", file=sys.stderr)
                before = measure(str(old), path, copies, 0, warm, args.repeats)
                after = measure("new", path, copies, 0, warm, args.repeats)
                budget = (measure("new", path, copies, args.budget, warm, args.repeats)
                          if "zeros" in path.name else "-")
                cells = []
                for result in (before, after):
                    cells += ([f"{result[0]:.0f}", f"{result[1]:.0f}"]
                              if isinstance(result, tuple) else [f"fails: {result}", ""])
                cells.append(f"{budget[0]:.0f}" if isinstance(budget, tuple) else budget)
                times = " / ".join(f"{r[2]:.2f}" if isinstance(r, tuple) else "-"
                                   for r in (before, after, budget))
                size = path.stat().st_size
                size = f"{size / 2**20:.1f} MiB" if size > 2**20 else f"{size / 1024:.0f} KiB"
                print(f"| {name} ({size}) | {copies} | " + " | ".join(cells) + f" | {times} |")


if __name__ == "__main__":
    main()
