"""Python code run in a fresh interpreter (this one's), for what only a new process
shows: which modules an import pulls in, what an order of imports does."""
import subprocess
import sys


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -c code``; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
