"""Counting a Python workload's instructions with valgrind's callgrind (for the benchmarks).

Wall time on this shared two-core machine swings by a third within minutes; the instructions a
workload executes do not, so the ``*_instructions.py`` benchmarks compare those.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def have_valgrind() -> bool:
    if shutil.which("valgrind") is None:
        print("error: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return False
    return True


def instructions(script: str, args: list[str], out: Path) -> int:
    """Instructions ``python script *args`` executes under callgrind (its profile goes to
    ``out``), with a fixed hash seed and one BLAS thread so that runs repeat exactly."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    done = subprocess.run(
        [*command, script, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))
