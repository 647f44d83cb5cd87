"""The study report: collect run directories, check that their protocols match, rank the families
from the measured numbers, draw the figures and write one self-contained HTML page + Markdown.

``collect.py`` (run dirs -> typed records, protocol checks), ``verdicts.py`` (pure ranking rules),
``plots.py`` (matplotlib figures), ``html.py`` (jinja2 page and Markdown twin), ``browser.py``
(headless Chromium check used by the tests). ``build_report(run_dirs, out)`` ties them together.
"""

from __future__ import annotations

from genbench.report.build import build_report

__all__ = ["build_report"]
