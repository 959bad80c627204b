"""Kubeconfig reading: merging like kubectl, static credentials, plugins, clear errors."""

from __future__ import annotations

import base64
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from choreoctl.errors import InputError
from choreoctl.kube.config import endpoint_from_kubeconfig, list_contexts


def _write(path: Path, clusters: list, users: list, contexts: list, current: str = "") -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _ctx(name: str, cluster: str, user: str) -> dict:
    return {"name": name, "context": {"cluster": cluster, "user": user}}


def test_token_ca_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("CA")
    kc = _write(
        tmp_path / "config",
        [
            {
                "name": "c",
                "cluster": {"server": "https://10.0.0.1:6443/", "certificate-authority": "ca.crt"},
            }
        ],
        [{"name": "u", "user": {"token": "abc"}}],
        [_ctx("one", "c", "u")],
        current="one",
    )
    ep = endpoint_from_kubeconfig(kc, None)
    assert ep.server == "https://10.0.0.1:6443"
    assert ep.token == "abc"
    assert ep.ca_file == str(tmp_path / "ca.crt")
    assert ep.verify and ep.name == "one"


def test_embedded_data_and_insecure(tmp_path: Path) -> None:
    b64 = base64.b64encode(b"PEMDATA").decode()
    kc = _write(
        tmp_path / "config",
        [{"name": "c", "cluster": {"server": "https://h:1", "insecure-skip-tls-verify": True}}],
        [{"name": "u", "user": {"client-certificate-data": b64, "client-key-data": b64}}],
        [_ctx("x", "c", "u")],
    )
    ep = endpoint_from_kubeconfig(kc, "x")
    assert ep.verify is False
    assert ep.client_cert is not None
    cert, key = ep.client_cert
    assert Path(cert).read_bytes() == b"PEMDATA"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_merge_first_definition_and_first_current_context_win(tmp_path: Path) -> None:
    a = _write(
        tmp_path / "a",
        [{"name": "c", "cluster": {"server": "https://first:1"}}],
        [{"name": "u", "user": {"token": "t1"}}],
        [_ctx("shared", "c", "u")],
        current="shared",
    )
    b = _write(
        tmp_path / "b",
        [
            {"name": "c", "cluster": {"server": "https://second:1"}},
            {"name": "d", "cluster": {"server": "https://d:1"}},
        ],
        [{"name": "u", "user": {"token": "t2"}}],
        [_ctx("shared", "c", "u"), _ctx("other", "d", "u")],
        current="other",
    )
    joined = os.pathsep.join([a, str(tmp_path / "missing"), b])
    names, current = list_contexts(joined)
    assert names == ["shared", "other"] and current == "shared"
    assert endpoint_from_kubeconfig(joined, None).server == "https://first:1"
    assert endpoint_from_kubeconfig(joined, "other").server == "https://d:1"
    assert endpoint_from_kubeconfig(joined, "other").token == "t1"


def test_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    kc = _write(tmp_path / "c", [], [], [_ctx("a", "c", "u")])
    with pytest.raises(InputError) as err:
        endpoint_from_kubeconfig(kc, "nope")
    assert "'nope'" in err.value.message and "contexts: a" in err.value.message


def test_missing_and_broken_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read kubeconfig"):
        endpoint_from_kubeconfig(str(tmp_path / "absent"), None)
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed")
    with pytest.raises(InputError, match="cannot read kubeconfig"):
        endpoint_from_kubeconfig(str(bad), None)
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match="not a mapping"):
        endpoint_from_kubeconfig(str(bad), None)


def test_exec_plugin_runs_through_the_kubernetes_loader(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json\n"
        'print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", '
        '"kind": "ExecCredential", "status": {"token": "from-plugin"}}))\n'
    )
    exec_cfg = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin)],
        "interactiveMode": "Never",
    }
    kc = _write(
        tmp_path / "config",
        [{"name": "c", "cluster": {"server": "https://plugin:6443"}}],
        [{"name": "u", "user": {"exec": exec_cfg}}],
        [_ctx("p", "c", "u")],
    )
    ep = endpoint_from_kubeconfig(kc, "p")
    assert ep.server == "https://plugin:6443"
    assert ep.token == "from-plugin"
