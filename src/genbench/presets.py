"""Presets: YAML files under ``configs/`` found by name, for runs and for studies alike.

A name is looked up first as a file path, then under each root in order: ``./configs`` (the
working directory's) and the ``configs/`` folder of the genbench checkout. Run presets are any
YAML below a root, named by their relative path without ``.yaml`` (``fmnist/ddpm``); study
presets are the YAML files directly in ``<root>/study`` (``fmnist-quick``).
"""

from __future__ import annotations

from pathlib import Path

from genbench.errors import GenbenchError

CONFIG_ROOTS = (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs")
STUDY_ROOTS = tuple(root / "study" for root in CONFIG_ROOTS)


def _find(name: str, roots: tuple[Path, ...], suffixes: tuple[str, ...]) -> Path | None:
    """``name`` as a file, else the first ``<root>/<name><suffix>`` that is one."""
    path = Path(name)
    if path.exists() and not path.is_dir():   # a device or FIFO too: read_yaml refuses it in one line
        return path
    for root in roots:
        for suffix in suffixes:
            cand = root / f"{name}{suffix}"
            if cand.is_file():
                return cand
    return None


def preset_names(roots: tuple[Path, ...], nested: bool) -> list[str]:
    """The preset names under ``roots``: relative paths without ``.yaml`` (``nested``: in subfolders too)."""
    return sorted({str(p.relative_to(r))[:-5] for r in roots if r.is_dir()
                   for p in (r.rglob("*.yaml") if nested else r.glob("*.yaml"))})


def resolve_config(name: str) -> Path:
    """A YAML path, or a run preset name such as ``fmnist/ddpm`` looked up under configs/."""
    found = _find(name, CONFIG_ROOTS, ("", ".yaml"))
    if found is None:
        presets = preset_names(CONFIG_ROOTS, nested=True)
        raise GenbenchError(f"config '{name}' not found",
                            f"give a YAML path or one of the presets: {', '.join(presets) or '(none found)'}")
    return found


def resolve_study(name: str) -> Path:
    """A YAML path, or a study preset name such as ``fmnist-quick`` looked up under configs/study/."""
    found = _find(name, STUDY_ROOTS, (".yaml",))
    if found is None:
        raise GenbenchError(f"study preset '{name}' not found",
                            f"give a YAML file or one of: {', '.join(preset_names(STUDY_ROOTS, nested=False))}")
    return found
