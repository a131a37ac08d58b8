"""Start-up time: median wall time of 10 runs of `lcbot user list`, `lcbot --help`, and of
`python -c "import lcbot.job"` (the job SDK, imported by programs of yours; shown also
less the bare interpreter's start).

Run by hand from a checkout with lcbot installed:  python benchmarks/cli_startup.py
Targets: CLI ≤ 150 ms median on a 2-core machine (issue 2); `import lcbot.job` ≤ 30 ms
(issue 13).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 10


def timings_ms(argv: list[str], cwd: Path) -> list[float]:
    times = []
    for _ in range(RUNS + 1):  # one warm-up run, not counted
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return times[1:]


def main() -> None:
    lcbot = shutil.which("lcbot") or str(Path(sys.executable).with_name("lcbot"))
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        subprocess.run([lcbot, "init", "--root", "alice"], cwd=cwd, check=True, capture_output=True)
        for i in range(20):
            subprocess.run(
                [lcbot, "user", "add", f"user{i}", "--pri", "user"],
                cwd=cwd,
                check=True,
                capture_output=True,
            )
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("lcbot user list (21 users)", [lcbot, "user", "list"]),
            ("lcbot --help", [lcbot, "--help"]),
            ("import lcbot.job", [sys.executable, "-c", "import lcbot.job"]),
        ]
        print(f"{RUNS} runs each, Python {sys.version.split()[0]}      median     best")
        medians = {}
        for label, argv in rows:
            times = timings_ms(argv, cwd)
            medians[label] = statistics.median(times)
            print(f"  {label:<28} {medians[label]:7.1f} ms {min(times):7.1f} ms")
        extra = medians["import lcbot.job"] - medians["python -c pass"]
        print(f"  {'import lcbot.job, less python':<28} {extra:7.1f} ms")


if __name__ == "__main__":
    main()
