"""Child processes of the test clusters: start with a log file, stop by PID, never leak.

Every process is started in its own session (so ``python -m tests.testenv up`` can leave
clusters running after it exits) and recorded in a module registry; an ``atexit`` hook and a
SIGTERM/SIGHUP handler stop whatever is still registered when the Python process ends, so an
interrupted pytest session leaves nothing behind. Stopping is SIGTERM, a grace period, SIGKILL,
always by PID and only for processes this module started (or, for ``down``, recorded in a
state file and checked against their command line first).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from tests.testenv.errors import ClusterStartFailed

_registry: dict[int, ManagedProcess] = {}
_registry_lock = threading.Lock()
_reserved_ports: set[int] = set()


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages ("" if unreadable)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and not handed out before by this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with _registry_lock:
            if port not in _reserved_ports:
                _reserved_ports.add(port)
                return port
    raise ClusterStartFailed("no free TCP port found on 127.0.0.1 after 100 tries")


@dataclass
class ManagedProcess:
    """One child process with its log file; ``stop()`` is idempotent."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        with _registry_lock:
            _registry[self.popen.pid] = self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def rss_kib(self) -> int:
        """Resident memory from /proc (0 when the process is gone)."""
        if not self.alive():
            return 0
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return 0
        return 0

    def check_running(self) -> None:
        """Raise with the log tail if the process has exited."""
        code = self.exit_code()
        if code is not None:
            raise ClusterStartFailed(
                f"{self.name} exited with code {code}; log {self.log_path}:\n{tail(self.log_path)}"
            )

    def kill(self) -> None:
        """SIGKILL now (a crash, for tests of failure paths)."""
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(10)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        with _registry_lock:
            _registry.pop(self.popen.pid, None)


def stop_all(procs: Sequence[ManagedProcess], grace: float = 5.0) -> None:
    """Stop several processes: SIGTERM to all first, so their grace periods overlap."""
    for p in procs:
        if p.alive():
            assert p.popen is not None
            p.popen.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        p.stop(grace=max(0.1, deadline - time.monotonic()))


def detach(procs: Sequence[ManagedProcess]) -> None:
    """Forget processes without stopping them: ``up`` hands them over to a state file."""
    with _registry_lock:
        for p in procs:
            if p.popen is not None:
                _registry.pop(p.popen.pid, None)


def stop_recorded(pid: int, exe: str, grace: float = 5.0) -> bool:
    """Stop a process recorded in a state file, if ``pid`` still runs ``exe``.

    The command line check keeps a reused PID of an unrelated process safe.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not cmdline or os.fsencode(exe) not in cmdline[:2]:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _stop_registered() -> None:
    with _registry_lock:
        procs = list(_registry.values())
    stop_all(procs, grace=3.0)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_registered()
    # Restore the default action and re-deliver, so the exit status still says "killed by".
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_handlers_installed = False


def install_cleanup_handlers() -> None:
    """atexit + SIGTERM/SIGHUP handlers that stop every registered process (once per process).

    SIGINT is left to Python (KeyboardInterrupt unwinds, fixtures tear down, atexit runs).
    Handlers are only replaced where they are still the default, and only from the main thread.
    """
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_registered)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _on_signal)
