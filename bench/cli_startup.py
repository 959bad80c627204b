"""How fast `choreoctl --help` starts, as a ratio to `kubectl version --client`.

Both commands run interleaved in the same loop (so machine noise hits both alike);
the ratio of the medians of 15 runs each is the figure (goal: <= 2.5). Completion is
timed too: the shell calls choreoctl with _CHOREOCTL_COMPLETE on every <TAB>.

    .venv/bin/python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _time(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"cli_startup: {' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        sys.exit(
            f"cli_startup: {name} not found (run `bash tests/run` once, or pip install .[test])"
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    choreoctl, kubectl = _tool("choreoctl"), _tool("kubectl")
    complete_env = dict(
        os.environ, _CHOREOCTL_COMPLETE="complete_bash", COMP_WORDS="choreoctl ", COMP_CWORD="1"
    )
    for _ in range(2):  # warm the page cache
        _time([choreoctl, "--help"])
        _time([kubectl, "version", "--client"])
    help_s, kube_s, comp_s = [], [], []
    for _ in range(args.runs):
        help_s.append(_time([choreoctl, "--help"]))
        kube_s.append(_time([kubectl, "version", "--client"]))
        comp_s.append(_time([choreoctl], env=complete_env))
    h, k, c = (statistics.median(x) for x in (help_s, kube_s, comp_s))
    print(f"choreoctl --help           median {h * 1000:7.1f} ms  ({args.runs} runs)")
    print(f"choreoctl <TAB> completion median {c * 1000:7.1f} ms")
    print(f"kubectl version --client   median {k * 1000:7.1f} ms  ({kubectl})")
    print(f"ratio help/kubectl: {h / k:.2f}  (goal <= 2.5)")
    print(f"ratio completion/kubectl: {c / k:.2f}")


if __name__ == "__main__":
    main()
