"""The one exception type that the CLI turns into a single line for the user."""

from __future__ import annotations


class GenbenchError(Exception):
    """A problem the user can fix: what is wrong, and how to fix it.

    The CLI prints ``error: <problem> (fix: <fix>)`` on one line and exits non-zero;
    the traceback is shown only with ``--debug``.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = " ".join(self.problem.split())
        if self.fix:
            text += f" (fix: {' '.join(self.fix.split())})"
        return text
