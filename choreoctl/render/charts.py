"""The packaged plane charts: a jinja2 environment over ``choreoctl/_data/templates``.

Templates are read through importlib.resources, so rendering works the same from a
source tree, an installed wheel or a zip. A chart is a directory of ``*.yaml.j2`` files
rendered in name order; ``_lib/`` holds partials and macros shared by the charts.
``StrictUndefined`` turns a misspelt value into a RenderError instead of an empty string.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

from choreoctl.errors import RenderError

if TYPE_CHECKING:
    import jinja2

CHART_SUFFIX = ".yaml.j2"


def templates_root() -> Traversable:
    """The packaged ``templates/`` directory (CRDs in ``crds/``, one chart per plane)."""
    return files("choreoctl") / "_data" / "templates"


def _quote(value: Any) -> str:
    """A YAML scalar for any string or number: JSON is valid YAML and escapes everything."""
    return json.dumps(value)


def _to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for a dict or list, every line after the first indented by ``indent``."""
    import yaml

    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=1000)
    return text.rstrip("\n").replace("\n", "\n" + " " * indent)


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """``first`` updated with ``second`` (labels: specific first, shared after)."""
    return {**first, **second}


def _loader() -> jinja2.BaseLoader:
    import jinja2

    root = templates_root()

    def load(name: str) -> tuple[str, str, Callable[[], bool]]:
        node = root
        for part in name.split("/"):
            node = node / part
        if not node.is_file():
            raise jinja2.TemplateNotFound(name)
        return node.read_text(encoding="utf-8"), name, lambda: True

    class PackageLoader(jinja2.BaseLoader):
        def get_source(
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str, Callable[[], bool]]:
            return load(template)

    return PackageLoader()


@cache
def environment() -> jinja2.Environment:
    """The one jinja2 environment: strict undefined, no autoescape, YAML-friendly filters."""
    import jinja2

    env = jinja2.Environment(
        loader=_loader(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["q"] = _quote
    env.filters["yaml"] = _to_yaml
    env.filters["merge"] = _merge
    return env


def chart_templates(chart: str) -> list[str]:
    """Template names of ``chart`` (a plane directory), sorted; partials excluded."""
    folder = templates_root() / chart
    if not folder.is_dir():
        raise RenderError(f"no chart called {chart!r} in the packaged templates")
    names = [n.name for n in folder.iterdir() if n.name.endswith(CHART_SUFFIX)]
    return [f"{chart}/{n}" for n in sorted(names) if not n.startswith("_")]


def render_template(name: str, values: dict[str, Any]) -> str:
    """The text ``name`` renders to with ``values`` bound as ``v``."""
    import jinja2

    try:
        return environment().get_template(name).render(v=values)
    except jinja2.UndefinedError as e:
        raise RenderError(
            f"template {name} uses a value the topology does not provide: {e.message}",
            hint="this is a chart bug if the topology validated; report it with the topology",
        ) from e
    except jinja2.TemplateError as e:
        raise RenderError(
            f"template {name} cannot be rendered: {e}",
            hint="this is a chart bug; report it with the topology",
        ) from e


def crd_files() -> list[tuple[str, str]]:
    """``(file name, text)`` of every packaged CRD, sorted by name."""
    folder = templates_root() / "crds"
    return [
        (n.name, n.read_text(encoding="utf-8"))
        for n in sorted(folder.iterdir(), key=lambda n: n.name)
        if n.name.endswith(".yaml")
    ]
