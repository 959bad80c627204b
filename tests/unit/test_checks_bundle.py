"""Support-bundle redaction: no Secret value or token survives, names and shape do."""

from __future__ import annotations

import base64
import tarfile

from choreoctl.checks.bundle import Bundle, redact_object, scrub_text, write_bundle

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz"
SECRET = "s3cr3t-VALUE-42xyz"


def test_secret_values_are_gone_keys_stay() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "cluster-agent-tls",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": SECRET},
            "managedFields": [{"manager": "x"}],
        },
        "data": {"tls.key": base64.b64encode(SECRET.encode()).decode(), "ca.crt": "Y2E="},
        "stringData": {"password": SECRET},
    }
    clean = redact_object(obj)
    text = repr(clean)
    assert SECRET not in text and base64.b64encode(SECRET.encode()).decode() not in text
    assert set(clean["data"]) == {"tls.key", "ca.crt"}
    assert "managedFields" not in clean["metadata"]
    assert clean["metadata"]["name"] == "cluster-agent-tls"


def test_sensitive_keys_env_values_and_tokens_in_text() -> None:
    obj = {
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {
            "api-token": SECRET,
            "config.yaml": f"auth:\n  password: {SECRET}\nheader: Bearer {SECRET}\n",
            "note": f"token was {JWT} yesterday",
            "key.pem": f"-----BEGIN EC PRIVATE KEY-----\n{SECRET}\n-----END EC PRIVATE KEY-----\n",
            "plain": "keep me",
        },
        "spec": {
            "containers": [
                {
                    "env": [
                        {"name": "DB_PASSWORD", "value": SECRET},
                        {"name": "MODE", "value": "dev"},
                    ]
                },
                {"volumes": [{"secret": {"secretName": "cluster-agent-tls"}}]},
            ]
        },
    }
    clean = redact_object(obj)
    text = repr(clean)
    assert SECRET not in text
    assert JWT not in text
    assert clean["data"]["plain"] == "keep me"
    assert clean["spec"]["containers"][0]["env"][1]["value"] == "dev"
    assert (
        clean["spec"]["containers"][1]["volumes"][0]["secret"]["secretName"] == "cluster-agent-tls"
    )


def test_scrub_log_lines() -> None:
    line = f'{{"level":"info","msg":"dial","token":"{SECRET}"}} Authorization: Bearer {JWT}'
    out = scrub_text(line)
    assert SECRET not in out and JWT not in out
    assert '"level":"info"' in out


def test_written_bundle_is_a_tar_gz_without_secrets(tmp_path) -> None:
    bundle = Bundle()
    bundle.add_yaml(
        "clusters/a/ns/secrets.yaml",
        [{"kind": "Secret", "metadata": {"name": "x"}, "data": {"k": SECRET}}],
    )
    bundle.files["report.json"] = "{}\n"
    path = write_bundle(bundle, tmp_path / "b.tar.gz")
    with tarfile.open(path, "r:gz") as tar:
        names = tar.getnames()
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    assert "choreoctl-bundle/report.json" in names
    assert SECRET.encode() not in blob
    assert b"<redacted>" in blob
    assert not list(tmp_path.glob(".*tmp"))


def test_agent_log_error_lines() -> None:
    from choreoctl.checks.doctor.agents import ERROR_LINE

    for line in (
        '{"level":"error","msg":"dial failed"}',
        "level=error msg=x",
        "2026/11/25 ERROR tunnel closed",
        "panic: runtime error",
    ):
        assert ERROR_LINE.search(line), line
    for line in ('{"level":"info","msg":"connected"}', "errors=0 handled", "terrorist"):
        assert not ERROR_LINE.search(line), line
