"""A fast reader for kubeconfig files: merge, pick a context, resolve static credentials.

Why not only the ``kubernetes`` package: importing its loader costs ~300 ms and each
context ~35 ms, paid by every command and again per cluster. Most kubeconfigs hold
static credentials (token, client certificate, CA), which this module resolves
directly; contexts whose user needs a plugin (``exec``, ``auth-provider``) are left to
the ``kubernetes`` loader by :mod:`choreoctl.kube.config`.

Merging follows kubectl: files in ``$KUBECONFIG`` order, the first definition of a
named cluster, user or context wins, and so does the first ``current-context``.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choreoctl.errors import InputError

_TMP: list[str] = []


@dataclass
class KubeConfig:
    """The merged content of one or more kubeconfig files."""

    files: list[str]
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str | None = None
    bases: dict[tuple[str, str], Path] = field(default_factory=dict)  # relative paths' dirs


_CACHE: dict[tuple[tuple[str, float], ...], KubeConfig] = {}


def kubeconfig_paths(kubeconfig: str | os.PathLike[str] | None) -> list[str]:
    """The files to read: ``--kubeconfig``, else ``$KUBECONFIG`` (a list), else ~/.kube/config."""
    raw = (
        os.fspath(kubeconfig)
        if kubeconfig
        else os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    )
    return [p for p in raw.split(os.pathsep) if p]


def read_kubeconfig(kubeconfig: str | os.PathLike[str] | None) -> KubeConfig:
    """Read and merge the kubeconfig files (cached while the files are unchanged)."""
    import yaml

    paths = kubeconfig_paths(kubeconfig)
    stamps: list[tuple[str, float]] = []
    for p in paths:
        try:
            stamps.append((p, os.stat(p).st_mtime))
        except OSError:
            stamps.append((p, -1.0))
    key = tuple(stamps)
    if key in _CACHE:
        return _CACHE[key]
    merged = KubeConfig(files=paths)
    readable = 0
    for path, mtime in stamps:
        if mtime < 0 and len(paths) > 1:
            continue  # kubectl ignores missing files in a KUBECONFIG list
        try:
            text = Path(path).read_text(encoding="utf-8")
            doc = yaml.safe_load(text) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InputError(
                f"cannot read kubeconfig {path}: {e}",
                hint="pass --kubeconfig PATH or set KUBECONFIG to a readable kubeconfig file",
            ) from e
        if not isinstance(doc, dict):
            raise InputError(
                f"kubeconfig {path} is not a mapping",
                hint="a kubeconfig is a YAML mapping with clusters, users and contexts",
            )
        readable += 1
        base = Path(path).resolve().parent
        for section, target in (
            ("clusters", merged.clusters),
            ("users", merged.users),
            ("contexts", merged.contexts),
        ):
            for entry in doc.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                body = entry.get(section[:-1]) if isinstance(entry, dict) else None
                if isinstance(name, str) and isinstance(body, dict) and name not in target:
                    target[name] = body
                    merged.bases[(section, name)] = base
        if merged.current is None and doc.get("current-context"):
            merged.current = str(doc["current-context"])
    if readable == 0:
        raise InputError(
            f"no readable kubeconfig in {os.pathsep.join(paths)}",
            hint="pass --kubeconfig PATH or set KUBECONFIG",
        )
    _CACHE[key] = merged
    return merged


def _materialise(data_b64: str, suffix: str) -> str:
    """Write base64 ``*-data`` to a private temp file (ssl wants files); removed at exit."""
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="choreoctl-kube-"))
        atexit.register(shutil.rmtree, _TMP[0], True)
    fd, name = tempfile.mkstemp(dir=_TMP[0], suffix=suffix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64decode(data_b64))
    return name


def _path(cfg: KubeConfig, section: str, name: str, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else cfg.bases[(section, name)] / p)


@dataclass(frozen=True)
class StaticCredentials:
    """What :func:`resolve` found: an endpoint's parts, or ``needs_plugin``."""

    context: str
    server: str = ""
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None
    verify: bool = True
    needs_plugin: bool = False


def resolve(cfg: KubeConfig, context: str | None) -> StaticCredentials:
    """Resolve ``context`` (or the current one) into static credentials."""
    name = context or cfg.current
    where = os.pathsep.join(cfg.files)
    if not name:
        raise InputError(
            f"kubeconfig {where} has no current-context",
            hint="pass --context NAME (see `kubectl config get-contexts`)",
        )
    ctx = cfg.contexts.get(name)
    if ctx is None:
        known = ", ".join(sorted(cfg.contexts)) or "none"
        raise InputError(
            f"context {name!r} is not in kubeconfig {where} (contexts: {known})",
            hint="list contexts with `kubectl config get-contexts`; pass --context NAME",
        )
    cluster_name, user_name = str(ctx.get("cluster", "")), str(ctx.get("user", ""))
    cluster = cfg.clusters.get(cluster_name)
    if cluster is None or not cluster.get("server"):
        raise InputError(
            f"context {name!r} names cluster {cluster_name!r}, which has no server in {where}",
            hint="fix the kubeconfig's clusters section",
        )
    user = cfg.users.get(user_name, {})
    if user.get("exec") or user.get("auth-provider"):
        return StaticCredentials(context=name, needs_plugin=True)
    ca_file = None
    if cluster.get("certificate-authority-data"):
        ca_file = _materialise(cluster["certificate-authority-data"], ".crt")
    elif cluster.get("certificate-authority"):
        ca_file = _path(cfg, "clusters", cluster_name, cluster["certificate-authority"])
    token, token_file = user.get("token"), None
    if not token and user.get("tokenFile"):
        token_file = _path(cfg, "users", user_name, user["tokenFile"])
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise InputError(
                f"context {name!r}: cannot read tokenFile {token_file}: {e}",
                hint="fix the path in the kubeconfig's users section",
            ) from e
    cert = key = None
    if user.get("client-certificate-data"):
        cert = _materialise(user["client-certificate-data"], ".crt")
    elif user.get("client-certificate"):
        cert = _path(cfg, "users", user_name, user["client-certificate"])
    if user.get("client-key-data"):
        key = _materialise(user["client-key-data"], ".key")
    elif user.get("client-key"):
        key = _path(cfg, "users", user_name, user["client-key"])
    return StaticCredentials(
        context=name,
        server=str(cluster["server"]).rstrip("/"),
        token=str(token) if token else None,
        token_file=token_file,
        ca_file=ca_file,
        client_cert=(cert, key) if cert and key else None,
        verify=not cluster.get("insecure-skip-tls-verify", False),
    )
