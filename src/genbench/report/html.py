"""Render the report: one self-contained HTML page (images as data URIs) and its Markdown twin."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Figure:
    id: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _env(autoescape: bool):
    import jinja2

    from genbench.report.verdicts import fmt_value, lead

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["lead"] = lead
    env.filters["fmtv"] = lambda v, fmt: fmt_value(fmt, v)
    env.filters["mdcell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def write_html(context: dict, path: Path) -> Path:
    text = _env(True).get_template("report.html.j2").render(**context)
    path.write_text(text, encoding="utf-8")
    return path


def write_markdown(context: dict, out: Path) -> Path:
    img = out / "img"
    img.mkdir(exist_ok=True)
    for figs in context["figures"].values():
        for fig in figs:
            (img / f"{fig.id}.png").write_bytes(fig.png)
    path = out / "report.md"
    path.write_text(_env(False).get_template("report.md.j2").render(**context), encoding="utf-8")
    return path
