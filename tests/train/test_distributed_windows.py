"""`deepimage train --nproc` on Windows, simulated: torchrun's store without libuv
(USE_LIBUV=0; PyTorch's Windows builds have none) and gloo instead of NCCL, also for
GPUs (PyTorch has no NCCL on Windows)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist

from orangecontrib.deepimage.core import distributed
from orangecontrib.deepimage.core.distributed import (Parallel, backend_for, init_from_env,
                                                      launch_env)


@pytest.mark.parametrize("on_gpu, platform, backend", [
    (True, "linux", "nccl"), (True, "win32", "gloo"), (False, "linux", "gloo"),
    (False, "win32", "gloo")])
def test_backend(on_gpu, platform, backend):
    assert backend_for(on_gpu, platform) == backend


def test_launch_environment():
    assert launch_env(2, {}, "win32", cpus=8) == {"OMP_NUM_THREADS": "4", "USE_LIBUV": "0"}
    assert launch_env(2, {"USE_LIBUV": "1"}, "win32", cpus=8)["USE_LIBUV"] == "0"
    assert launch_env(3, {"OMP_NUM_THREADS": "1"}, "linux", cpus=8) == {"OMP_NUM_THREADS": "1"}


def test_windows_gpus_join_a_gloo_group_and_train_on_their_gpu(monkeypatch):
    """--device cuda on Windows: each process takes its GPU, the group is gloo."""
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **kw: calls.append(("group", backend)))
    monkeypatch.setattr(distributed, "current", lambda: "joined")
    monkeypatch.setattr(distributed, "_ON_GPU", {"value": False})  # this test's own
    assert init_from_env("cuda") == "joined"
    assert calls == [("set_device", 1), ("group", "gloo")]
    assert distributed._ON_GPU["value"]  # current() then builds Parallel(gpu=True)


def test_a_gloo_group_on_gpus_puts_tensors_on_the_gpu():
    parallel = Parallel(1, 2, 1, "gloo", gpu=True)
    assert parallel.on_gpu and parallel.device() == "cuda:1"
    assert Parallel(0, 2, 0, "gloo").device() == "cpu"
    assert Parallel(0, 2, 0, "nccl").device() == "cuda:0"


WORKER = textwrap.dedent("""
    import os
    from orangecontrib.deepimage.core import distributed
    parallel = distributed.init_from_env("cpu")
    line = f"{parallel.backend} {parallel.device()} {parallel.sum(parallel.rank + 1.0)}\\n"
    os.write(1, line.encode())  # one write: the two processes' lines never interleave
    distributed.close()
""")


def test_torchrun_without_libuv(tmp_path):
    """The environment `--nproc` gives torchrun on Windows works: a real two-process
    gloo group with torchrun's store in its non-libuv mode."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = launch_env(2, platform="win32")
    assert env["USE_LIBUV"] == "0"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", str(script)], env=env, text=True,
                          capture_output=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(proc.stdout.split("\n"))[-2:] == ["gloo cpu (3.0,)"] * 2, proc.stdout


def test_nproc_launches_torchrun_with_the_windows_environment(monkeypatch, tmp_path):
    """`deepimage train --nproc 2` on Windows hands torchrun USE_LIBUV=0."""
    from orangecontrib.deepimage.cli import main
    launched = []
    monkeypatch.setattr(subprocess, "call",
                        lambda command, env: launched.append((command, env)) or 0)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("USE_LIBUV", raising=False)
    (tmp_path / "a").mkdir()
    assert main(["train", str(tmp_path), "--nproc", "2", "-o", str(tmp_path / "m.pkcls")]) == 0
    ((command, env),) = launched
    assert command[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert env["USE_LIBUV"] == "0" and "OMP_NUM_THREADS" in env
