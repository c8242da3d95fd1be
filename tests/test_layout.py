"""The code's layout rules that a reader cannot check at a glance."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "orangecontrib").rglob("*.py"), *(ROOT / "server").rglob("*.py")])


def test_no_private_name_is_imported_across_modules():
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [f"{path.relative_to(ROOT)}: {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not found, "private names imported from other modules:\n" + "\n".join(found)


MAX_LINES = 500


def test_no_module_is_over_500_lines():
    """One job per module: a file over 500 lines is doing more than one (split it by job)."""
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path in SOURCES
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "modules over 500 lines:\n" + "\n".join(long)
