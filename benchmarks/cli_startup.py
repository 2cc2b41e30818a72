"""`voxtool --help` start-up time: median of 10 fresh processes, against a bare `python -c pass` baseline.

Run: python benchmarks/cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int = 10) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    base = timed([sys.executable, "-c", "pass"])
    helps = timed([sys.executable, "-m", "voxtool", "--help"])
    version = timed([sys.executable, "-m", "voxtool", "--version"])
    torch_import = timed([sys.executable, "-c", "import torch"], runs=5)
    b, h = statistics.median(base), statistics.median(helps)
    print(f"python -c pass      median {b * 1000:7.1f} ms")
    print(f"voxtool --help      median {h * 1000:7.1f} ms  ({h / b:.1f}x bare python; target < 500 ms)")
    print(f"voxtool --version   median {statistics.median(version) * 1000:7.1f} ms")
    print(f"python -c 'import torch' median {statistics.median(torch_import) * 1000:7.1f} ms (what --help avoids)")


if __name__ == "__main__":
    main()
