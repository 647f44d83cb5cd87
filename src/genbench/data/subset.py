"""Keeping a subset of classes (e.g. the study's CIFAR-10 ``automobile`` runs)."""

from __future__ import annotations

import torch

from genbench.data.base import InMemoryData
from genbench.errors import GenbenchError


def select_classes(data: InMemoryData, classes: list[int | str]) -> InMemoryData:
    """Keep the items whose label is in ``classes`` (indices, or names matched case-insensitively)."""
    if data.y is None or not data.class_names:
        raise GenbenchError(
            f"dataset '{data.name}' has no class labels, so data.classes cannot select from it",
            "remove data.classes (image folders get labels from first-level sub-folders)",
        )
    names = data.class_names
    lookup = {n.lower(): i for i, n in enumerate(names)}
    wanted: list[int] = []
    for c in classes:
        if isinstance(c, int) and not isinstance(c, bool):
            if not 0 <= c < len(names):
                raise GenbenchError(
                    f"class index {c} is out of range for {data.name} (0..{len(names) - 1})",
                    f"use an index 0..{len(names) - 1} or a name: {', '.join(names)}",
                )
            wanted.append(c)
        elif str(c).strip().lower() in lookup:
            wanted.append(lookup[str(c).strip().lower()])
        else:
            raise GenbenchError(
                f"unknown class '{c}' for {data.name}", f"choose from: {', '.join(names)} (or their indices)"
            )
    keep = torch.isin(data.y, torch.tensor(sorted(set(wanted)), dtype=data.y.dtype)).nonzero().squeeze(1)
    if len(keep) == 0:
        raise GenbenchError(
            f"no items of class {', '.join(names[i] for i in wanted)} in {data.source}",
            "check data.classes and data.split",
        )
    return data.select(keep)
