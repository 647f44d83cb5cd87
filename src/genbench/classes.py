"""Which classes a conditional model is asked for, and with what guidance: the command line's ``--class``,
``--guidance`` and ``--guidance-interval`` turned into per-seed labels and a
:class:`~genbench.methods.guidance.Guidance`, each refused in one line when it cannot apply.

Labels are a function of the seed: sample k of seed s asks for ``classes[s % len(classes)]``, so a seed
gives the same sample whatever -n or the batch, and a run of consecutive seeds is balanced over the
classes (the evaluation protocol of a conditional model: equal numbers per class, as in Ho & Salimans
2022 and EDM's class-conditional CIFAR-10 FIDs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from genbench.errors import GenbenchError
from genbench.methods.guidance import Guidance
from genbench.sampling import seed_labels

MAX_ROW = 16   # samples per class row of a grid
RETRAIN_FIX = "train a conditional run (add conditional=true, e.g. `genbench train fmnist/flow-cond`)"


def is_conditional(loaded) -> bool:
    return bool(getattr(loaded, "num_classes", None))


def trained_classes(loaded) -> list[int]:
    """The class indices the run was trained on: those of ``data.classes`` if it kept a subset, else all."""
    names = list(getattr(loaded, "class_names", None) or [])
    subset = loaded.cfg.data.classes if hasattr(loaded.cfg.data, "classes") else None
    if not subset:
        return list(range(loaded.num_classes))
    lookup = {n.lower(): i for i, n in enumerate(names)}
    return sorted({c if isinstance(c, int) else lookup[str(c).strip().lower()] for c in subset})


def parse_classes(text: str | None, loaded) -> list[int] | None:
    """``--class`` (names or indices, comma-separated) as class indices; None without ``--class``."""
    if text is None:
        return None
    if not is_conditional(loaded):
        raise GenbenchError(f"--class {text}: this model is unconditional (trained without class labels)",
                            RETRAIN_FIX + ", or drop --class")
    names = list(loaded.class_names or [str(i) for i in range(loaded.num_classes)])
    valid = ", ".join(f"{i} {n}" for i, n in enumerate(names))
    lookup = {n.lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if part.lower() in lookup:
            out.append(lookup[part.lower()])
        elif part.isdigit() and int(part) < len(names):
            out.append(int(part))
        else:
            raise GenbenchError(f"unknown class '{part}'", f"choose a name or index: {valid}")
    trained = trained_classes(loaded)
    untrained = [i for i in out if i not in trained]
    if untrained:
        raise GenbenchError(f"class '{names[untrained[0]]}' is not among the classes this run was trained on",
                            f"choose from: {', '.join(names[i] for i in trained)}")
    return out


def labels_for(loaded, seeds: Sequence[int], class_text: str | None) -> tuple[list[int] | None, list[int] | None]:
    """Per-seed labels for a conditional model (``--class``'s, else balanced over the trained classes; None
    for an unconditional one) and the classes ``--class`` named (None without it)."""
    chosen = parse_classes(class_text, loaded)
    if not is_conditional(loaded):
        return None, chosen
    return seed_labels(seeds, chosen or trained_classes(loaded)), chosen


def parse_interval(text: str | None) -> tuple[float, float] | None:
    """``--guidance-interval LO,HI`` (noise levels sigma, guidance where LO < sigma <= HI)."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        raise GenbenchError(f"--guidance-interval {text!r} is not two numbers LO,HI",
                            "e.g. --guidance-interval 0.28,5.42 (EDM sigmas)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise GenbenchError(f"--guidance-interval {text}: need 0 <= LO < HI (finite)",
                            "e.g. --guidance-interval 0.28,5.42 (EDM sigmas)")
    return lo, hi


def make_guidance(loaded, scale: float | None, interval: str | None = None) -> Guidance | None:
    """The guidance ``--guidance W`` (``--guidance-interval``) asks for, or None; refused for unconditional
    models and GANs (a generator has no unconditional prediction)."""
    if scale is None:
        if interval is not None:
            raise GenbenchError("--guidance-interval needs --guidance W", "add --guidance, e.g. --guidance 2")
        return None
    if not math.isfinite(scale) or scale < 0:
        raise GenbenchError(f"--guidance must be a finite number >= 0 (got {scale})",
                            "e.g. --guidance 2 (1 = the conditional model, 0 = the unconditional one)")
    if not is_conditional(loaded):
        raise GenbenchError("--guidance needs a conditional model; this one was trained without labels",
                            RETRAIN_FIX + ", or drop --guidance")
    if loaded.cfg.method.kind == "gan":
        raise GenbenchError("a GAN's generator has no unconditional prediction: --guidance does not apply",
                            "drop --guidance (a conditional GAN takes --class)")
    return Guidance(float(scale), int(loaded.num_classes), parse_interval(interval))


def guidance_tag(guidance: Guidance | None, classes: Sequence[int] | None = None) -> str:
    """File-name tag of ``--class`` (indices) and the guidance: '' for neither."""
    tag = "-class" + "+".join(str(c) for c in classes) if classes else ""
    if guidance is not None:
        tag += f"-w{guidance.scale:g}"
        if guidance.interval:
            tag += f"-wi{guidance.interval[0]:g}_{guidance.interval[1]:g}"
    return tag


def rows_by_class(labels: Sequence[int]) -> tuple[list[int], int]:
    """An order of the samples with one grid row per class (classes in index order, seeds in order
    within a row) and the row length: every row is cut to the shortest class's count (at most MAX_ROW)."""
    by_class: dict[int, list[int]] = {}
    for k, c in enumerate(labels):
        by_class.setdefault(c, []).append(k)
    per_row = min(min(len(v) for v in by_class.values()), MAX_ROW)
    return [k for c in sorted(by_class) for k in by_class[c][:per_row]], per_row


def conditional_info(loaded, labels: Sequence[int] | None, guidance: Guidance | None) -> dict | None:
    """What an evaluation record says about the labels asked for and the guidance (None: unconditional)."""
    if labels is None:
        return None
    names = list(loaded.class_names or [str(i) for i in range(loaded.num_classes)])
    asked = sorted(set(labels))
    return {"classes": [names[c] for c in asked], "class_indices": asked,
            "labels": "class of seed s = classes[s % len(classes)] (balanced over consecutive seeds)",
            "guidance": guidance.describe() if guidance is not None else None}
