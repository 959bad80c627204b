"""Container images of every plane and how a topology's ``images`` settings rewrite them.

Default repositories carry no registry host (Docker Hub resolves them), so one
``images.registry`` value can prefix all of them for an air-gapped mirror. Every image is
pinned by tag; a digest from ``images.digests`` pins it further as ``repo:tag@sha256:…``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from choreoctl import __version__
from choreoctl.errors import Problem, RenderError
from choreoctl.topology.model import Images


@dataclass(frozen=True)
class ImageDefault:
    """A default repository and tag; ``tag`` "" means choreoctl's own version."""

    repository: str
    tag: str


# Keyed by the name ``images.digests`` uses. choreoctl's own image runs the gateway,
# the controller manager and every cluster agent.
DEFAULT_IMAGES: dict[str, ImageDefault] = {
    "choreoctl": ImageDefault("choreoctl/choreoctl", ""),
    "backstage": ImageDefault("openchoreo/openchoreo-ui", "v0.3.2"),
    "api": ImageDefault("openchoreo/openchoreo-api", "v0.3.2"),
    "kgateway": ImageDefault("kgateway-dev/kgateway", "v2.0.4"),
    "argo-workflows": ImageDefault("argoproj/workflow-controller", "v3.6.7"),
    "registry": ImageDefault("library/registry", "2.8.3"),
    "opensearch": ImageDefault("opensearchproject/opensearch", "2.19.1"),
    "observer": ImageDefault("openchoreo/openchoreo-observer", "v0.3.2"),
}

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _problems(images: Images) -> list[Problem]:
    found: list[Problem] = []
    if images.registry and not _REGISTRY.match(images.registry.rstrip("/")):
        found.append(
            Problem(
                f"{images.registry!r} is not a registry host (with optional port and path)",
                path="images.registry",
                expected="e.g. registry.example.com:5000/mirror",
            )
        )
    if images.tag and not _TAG.match(images.tag):
        found.append(Problem(f"{images.tag!r} is not an image tag", path="images.tag"))
    for name, digest in sorted(images.digests.items()):
        if name not in DEFAULT_IMAGES:
            found.append(
                Problem(
                    f"no image called {name!r}",
                    path=f"images.digests.{name}",
                    expected="one of " + ", ".join(sorted(DEFAULT_IMAGES)),
                )
            )
        elif not _DIGEST.match(digest):
            found.append(
                Problem(
                    f"{digest!r} is not a digest",
                    path=f"images.digests.{name}",
                    expected="sha256: followed by 64 lowercase hex digits",
                )
            )
    return found


def resolve_images(images: Images) -> dict[str, str]:
    """Every image reference the charts use, keyed like :data:`DEFAULT_IMAGES`.

    Raises RenderError listing every bad registry, tag or digest at once.
    """
    problems = _problems(images)
    if problems:
        raise RenderError(
            "the images settings cannot be used",
            hint="fix the images section of the topology (or the --set value)",
            problems=problems,
        )
    prefix = images.registry.rstrip("/") + "/" if images.registry else ""
    refs: dict[str, str] = {}
    for name, default in DEFAULT_IMAGES.items():
        tag = default.tag or images.tag or __version__
        ref = f"{prefix}{default.repository}:{tag}"
        digest = images.digests.get(name, "")
        refs[name] = f"{ref}@{digest}" if digest else ref
    return refs
