"""setup.py's floors are the versions CI's minimum environment installs and tests.

`make test-minimum` builds .venv-min with pip's constraints file .ci/minimum.txt; a
floor that is not pinned there is a promise nothing checks.
"""
import os
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

MINIMUM = Path(__file__).resolve().parents[1] / ".ci" / "minimum.txt"


def minimum_pins() -> dict:
    """{name: version} of every `name==version` line in .ci/minimum.txt."""
    pins = {}
    for line in MINIMUM.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            pins[canonicalize_name(requirement.name)] = Version(specifiers[0].version)
    return pins


def floors() -> dict:
    """{name: floor} of install_requires and the server extra (the add-on's promises)."""
    found = {}
    for text in distribution("Orange3-DeepImage").requires:
        requirement = Requirement(text)
        marker = str(requirement.marker or "")
        if "extra" in marker and not requirement.marker.evaluate({"extra": "server"}):
            continue
        for specifier in requirement.specifier:
            if specifier.operator == ">=":
                found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def test_every_floor_is_what_the_minimum_environment_installs():
    pins, promised = minimum_pins(), floors()
    assert {"orange3", "orange-widget-base", "numpy", "torch", "fastapi"} <= set(promised)
    for name, floor in promised.items():
        assert name in pins, f"setup.py promises {name}>={floor}; pin it in {MINIMUM.name}"
        pin = pins[name]
        # floor 1.24 is tested by 1.24.x, floor 3.36.2 only by 3.36.2 itself
        assert pin >= floor and pin.release[:len(floor.release)] == floor.release, (
            f"setup.py says {name}>={floor} but CI tests {name}=={pin}")


@pytest.mark.skipif(not os.environ.get("DEEPIMAGE_MINIMUM_VERSIONS"),
                    reason="checks the environment `make test-minimum` builds")
def test_the_minimum_environment_has_the_pinned_versions():
    wrong = {}
    for name, pin in minimum_pins().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            continue  # for another platform (onnxruntime off Linux x86_64)
        if installed != pin:
            wrong[name] = f"{installed} installed, {pin} pinned"
    assert not wrong
