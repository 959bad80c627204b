"""Writing a render to disk: one kustomize directory per cluster and plane, plus plan.yaml.

Layout: ``DIR/<cluster>/<directory>/<kind>-<name>.yaml`` with a ``kustomization.yaml``
listing them in apply order, ``DIR/plan.yaml`` (the install plan) and
``DIR/.choreoctl-render`` (the files this render wrote). A later render into the same
directory removes exactly those files first, so objects dropped from the topology do not
linger; any other non-empty directory is refused unless ``force`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choreoctl import __version__
from choreoctl.errors import Problem, RenderError
from choreoctl.render.manifests import Manifest
from choreoctl.render.renderer import Rendered

RECORD = ".choreoctl-render"
RECORD_KIND = "RenderRecord"
PLAN_FILE = "plan.yaml"
KUSTOMIZATION = "kustomization.yaml"


@dataclass(frozen=True)
class WriteSummary:
    """What ``write_rendered`` wrote, for ``-o json|yaml`` and tests."""

    output_dir: str
    topology: str
    directories: tuple[dict[str, Any], ...]
    files: int
    plan: str
    replaced_previous: bool = False
    removed: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputDir": self.output_dir,
            "topology": self.topology,
            "files": self.files,
            "plan": self.plan,
            "replacedPreviousRender": self.replaced_previous,
            "directories": [dict(d) for d in self.directories],
        }


def _dump(data: Any) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000))


def _kustomization(topology: str, manifests: list[Manifest]) -> str:
    head = f"# Rendered by choreoctl {__version__} from topology {topology}; kubectl apply -k .\n"
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [m.filename for m in manifests],
    }
    return head + _dump(body)


def render_files(rendered: Rendered) -> dict[str, str]:
    """Every file of the render, relative path → text, sorted by path."""
    files: dict[str, str] = {}
    for (cluster, directory), manifests in sorted(rendered.directories.items()):
        for part in (cluster, directory):
            if not part or part in {".", ".."} or "/" in part or "\\" in part:
                raise RenderError(
                    f"{part!r} cannot be used as a directory name",
                    hint="cluster names must be DNS labels",
                )
        base = f"{cluster}/{directory}"
        for m in manifests:
            files[f"{base}/{m.filename}"] = m.text
        files[f"{base}/{KUSTOMIZATION}"] = _kustomization(rendered.topology, manifests)
    plan_head = (
        f"# Install plan rendered by choreoctl {__version__}: apply the steps in ascending\n"
        "# group order; steps of one group may run in parallel.\n"
    )
    files[PLAN_FILE] = plan_head + _dump(rendered.plan.to_dict())
    return dict(sorted(files.items()))


def _previous_files(out: Path) -> list[str] | None:
    """The files a previous render recorded, or None if ``out`` holds no valid record."""
    import yaml

    record = out / RECORD
    if not record.is_file():
        return None
    try:
        data = yaml.safe_load(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or data.get("kind") != RECORD_KIND:
        return None
    listed = data.get("files")
    if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
        return None
    return [str(f) for f in listed]


def _remove_previous(out: Path, listed: list[str]) -> list[str]:
    root = out.resolve()
    removed: list[str] = []
    for rel in listed:
        path = (out / rel).resolve()
        # Only regular files inside the output directory: a tampered record cannot make
        # us delete anything else.
        if root in path.parents and path.is_file() and not (out / rel).is_symlink():
            path.unlink()
            removed.append(rel)
    for directory in sorted({(out / r).parent for r in listed}, key=lambda p: -len(p.parts)):
        while directory != out and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent
    return removed


def write_rendered(rendered: Rendered, output_dir: str | Path, force: bool = False) -> WriteSummary:
    """Write ``rendered`` under ``output_dir``; RenderError if the directory is not usable."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise RenderError(
            f"{out} exists and is not a directory",
            hint="give --output-dir a new or empty directory",
            problems=[Problem("not a directory", where=str(out))],
        )
    files = render_files(rendered)
    previous = _previous_files(out) if out.is_dir() else None
    removed: list[str] = []
    if previous is not None:
        removed = _remove_previous(out, previous)
    elif out.is_dir() and any(out.iterdir()) and not force:
        raise RenderError(
            f"{out} is not empty and does not hold a previous choreoctl render",
            hint="choose a new or empty directory, or pass --force to write into it anyway "
            "(files with the same names are overwritten, others are left alone)",
            problems=[Problem(f"no {RECORD} record found", where=str(out))],
        )
    try:
        for rel, text in files.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if path.name.startswith("secret-"):
                # A byo Secret carries a private key: readable by the owner only.
                path.chmod(0o600)
        record = {"apiVersion": "choreoctl.dev/v1alpha1", "kind": RECORD_KIND}
        record["topology"] = rendered.topology
        (out / RECORD).write_text(_dump({**record, "files": list(files)}), encoding="utf-8")
    except OSError as e:
        raise RenderError(
            f"cannot write to {out}: {e.strerror}",
            hint="check the directory's permissions and free space",
            problems=[Problem(str(e.strerror), where=str(e.filename or out))],
        ) from e
    dirs = tuple(
        {
            "cluster": cluster,
            "directory": directory,
            "path": str(out / cluster / directory),
            "objects": len(manifests),
        }
        for (cluster, directory), manifests in sorted(rendered.directories.items())
    )
    return WriteSummary(
        output_dir=str(out),
        topology=rendered.topology,
        directories=dirs,
        files=len(files),
        plan=str(out / PLAN_FILE),
        replaced_previous=previous is not None,
        removed=tuple(removed),
    )


__all__ = ["WriteSummary", "render_files", "write_rendered"]
