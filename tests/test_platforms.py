"""Supported platforms: an Intel Mac is refused with the reason when the add-on is built
from source there (simulated: sys.platform and platform.machine), and the README's
table says the same as setup.py."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMULATE = ("import platform, sys, setuptools, setuptools.command.build_py; "
            "sys.platform = {platform!r}; "
            "platform.machine = lambda: {machine!r}; sys.argv = ['setup.py', '--version']; "
            "__file__ = 'setup.py'; exec(compile(open('setup.py').read(), 'setup.py', 'exec'))")


def run_setup(platform: str, machine: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SIMULATE.format(platform=platform,
                                                                 machine=machine)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_intel_mac_build_stops_with_the_reason():
    proc = run_setup("darwin", "x86_64")
    assert proc.returncode != 0
    assert "no builds for Intel" in proc.stderr and "Apple Silicon" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("platform, machine", [("darwin", "arm64"), ("win32", "AMD64"),
                                               ("linux", "aarch64")])
def test_other_platforms_build(platform, machine):
    proc = run_setup(platform, machine)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0.1.0"


def test_readme_lists_the_platforms():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Supported platforms", 1)[1].split("\n## ", 1)[0]
    for row in ("Linux x86_64", "Linux aarch64", "Windows x64", "macOS arm64",
                "macOS x86_64 (Intel)"):
        assert f"| {row}" in section, row
    intel = next(line for line in section.splitlines() if "macOS x86_64" in line)
    assert "not supported" in intel.lower()
    guide = (ROOT / "doc" / "getting-started.md").read_text(encoding="utf-8")
    assert "## Supported platforms" in guide and "Intel" in guide
