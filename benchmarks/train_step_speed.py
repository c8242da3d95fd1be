#!/usr/bin/env python3
"""Seconds per whole-network training step of the fine-tuning recipe, with and without
mixed precision (AMP: float16 autocast and a gradient scaler, as core.train.epochs runs
on CUDA) and channels-last memory, per image size: what the Trainer's GPU path buys.

On a CPU only float32 is timed (the Trainer uses no AMP there), with the process's CPU
seconds beside the wall seconds. Markdown on stdout.

    python benchmarks/train_step_speed.py --device cuda --sizes 64 96 227 --batch 32
    OMP_NUM_THREADS=1 python benchmarks/train_step_speed.py --device cpu --sizes 64 96
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np


def time_steps(net, optimizer, x, y, amp: bool, channels_last: bool, steps: int,
               device) -> "tuple[float, float]":
    """Median (wall, process CPU) seconds of one forward, backward and AdamW step."""
    import torch
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp \
        else contextlib.nullcontext
    wall, cpu = [], []
    for i in range(steps + 2):  # two warm-up steps (cuDNN's algorithm search)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        inputs = net.preprocess(x)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast():
            loss = torch.nn.functional.cross_entropy(net.backbone(inputs), y,
                                                     label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="squeezenet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 227])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import torch

    from orangecontrib.deepimage.core.train import build_net, preset
    device = torch.device(args.device)
    ways = [(False, False), (False, True)]
    if device.type == "cuda":
        ways += [(True, False), (True, True)]
        print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}\n")
    else:
        print(f"CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}\n")
    print("| network | px | batch | AMP | channels-last | s per step (wall) | CPU s | "
          "images per s |")
    print("|---|---:|---:|---|---|---:|---:|---:|")
    config = preset(args.model, "fine-tune")
    for size in args.sizes:
        for amp, channels_last in ways:
            net = build_net(config, 10).to(device).train()
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
            x = torch.randint(0, 256, (args.batch, size, size, 3), dtype=torch.uint8,
                              device=device).float()
            y = torch.randint(0, 10, (args.batch,), device=device)
            wall, cpu = time_steps(net, optimizer, x, y, amp, channels_last, args.steps,
                                   device)
            print(f"| {args.model} | {size} | {args.batch} | {'yes' if amp else 'no'} | "
                  f"{'yes' if channels_last else 'no'} | {wall:.4f} | {cpu:.3f} | "
                  f"{args.batch / wall:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
