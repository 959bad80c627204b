"""Test clusters by hand: ``python -m tests.testenv up|down|status``.

    python -m tests.testenv up --clusters 4      # alpha beta gamma delta, regions us eu apac sa
    eval "$(python -m tests.testenv up --clusters 2 | grep ^export)"
    python -m tests.testenv status
    python -m tests.testenv down

``up`` leaves the clusters running after it exits; their state (PIDs, tokens, logs) lives in
``~/.cache/choreoctl-testenv/run`` (``--state-dir``). ``CHOREOCTL_TESTENV_REUSE=1 pytest …``
then runs the tests against them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tests.testenv.binaries import cache_root
from tests.testenv.clusterset import STATE_FILE, ClusterSet, start_clusters, stop_from_state
from tests.testenv.errors import ClusterEnvError
from tests.testenv.spec import NAMES, REGIONS, ClusterSpec


def _specs(args: argparse.Namespace) -> list[ClusterSpec]:
    names: list[str] = args.name or list(NAMES[: args.clusters])
    return [
        ClusterSpec(
            name=n,
            nodes=args.nodes,
            cpu=args.cpu,
            memory=args.memory,
            region=REGIONS[i % len(REGIONS)],
            storage_class=not args.no_storage_class,
            load_balancer=not args.no_load_balancer,
            cert_manager=args.cert_manager,
            own_etcd=args.own_etcd,
        )
        for i, n in enumerate(names)
    ]


def _running(state_dir: Path) -> bool:
    path = state_dir / STATE_FILE
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    return any(
        Path(f"/proc/{p['pid']}").exists() for c in state["clusters"] for p in c["processes"]
    )


def up(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if _running(state_dir):
        print(f"clusters already running from {state_dir}; run `down` first", file=sys.stderr)
        return 1
    shutil.rmtree(state_dir, ignore_errors=True)
    t0 = time.monotonic()
    cs = start_clusters(_specs(args), run_dir=state_dir, detached=True)
    print(f"{len(cs)} clusters ready in {time.monotonic() - t0:.1f} s: {', '.join(cs.clusters)}")
    for c in cs:
        print(f"  {c.context:<10} {c.server}  (limited user: --context {c.limited_context})")
    print(f"logs: {state_dir}/<cluster>/logs/")
    print(f"export KUBECONFIG={cs.kubeconfig}")
    return 0


def down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if not (state_dir / STATE_FILE).exists():
        print(f"no clusters recorded in {state_dir}")
        return 0
    stopped = stop_from_state(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    print(f"stopped {stopped} processes; removed {state_dir}")
    return 0


def status(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    try:
        cs = ClusterSet.attach(state_dir)
    except ClusterEnvError as e:
        print(e)
        return 1
    state = json.loads((state_dir / STATE_FILE).read_text())
    for entry in state["clusters"]:
        procs = entry["processes"]
        alive = [p["name"] for p in procs if Path(f"/proc/{p['pid']}").exists()]
        dead = [p["name"] for p in procs if p["name"] not in alive]
        print(f"{entry['spec']['name']:<10} {entry['server']}  running: {', '.join(alive)}")
        if dead:
            print(f"{'':<10} NOT running: {', '.join(dead)}")
    print(f"export KUBECONFIG={cs.kubeconfig}")
    return 0


def _kubelet(args: argparse.Namespace) -> int:
    from tests.testenv.kubelet import run_from_args

    return run_from_args(args, args.state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testenv", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=cache_root() / "run")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start clusters and leave them running")
    p_up.add_argument("--clusters", type=int, default=3, help="how many (names alpha, beta, …)")
    p_up.add_argument("--name", action="append", help="cluster name (repeat; overrides --clusters)")
    p_up.add_argument("--nodes", type=int, default=3)
    p_up.add_argument("--cpu", default="4")
    p_up.add_argument("--memory", default="8Gi")
    p_up.add_argument("--no-storage-class", action="store_true")
    p_up.add_argument("--no-load-balancer", action="store_true")
    p_up.add_argument("--cert-manager", action="store_true")
    p_up.add_argument("--own-etcd", action="store_true")
    p_up.set_defaults(func=up)
    sub.add_parser("down", help="stop the clusters of `up`").set_defaults(func=down)
    sub.add_parser("status", help="show the clusters of `up`").set_defaults(func=status)
    p_kubelet = sub.add_parser(
        "kubelet", help="run choreoctl's gateway/agent/controller pods of `up` as processes"
    )
    from tests.testenv.kubelet import add_arguments as kubelet_arguments

    kubelet_arguments(p_kubelet)
    p_kubelet.set_defaults(func=_kubelet)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (ClusterEnvError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
