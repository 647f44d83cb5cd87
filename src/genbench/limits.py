"""Limits on what genbench reads and allocates, checked before the work starts.

Every reader of a user's file checks the file's size (and, for formats that declare them, the
declared dimensions) against a limit here *before* reading or allocating, and refuses in one line
that names the file, the limit and the fix. Requests that allocate in proportion to a number the
user gives (``-n`` samples, a network's width) are checked against the memory available now.

Each limit can be raised (or lowered) for one command with the environment variable
``GENBENCH_LIMIT_<NAME>`` (a plain integer, e.g. ``GENBENCH_LIMIT_CONFIG_FILE_BYTES=8000000``);
docs/RELIABILITY.md lists them. Torch-free, so that configs can use it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genbench.errors import GenbenchError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class Limit:
    name: str        # GENBENCH_LIMIT_<name> overrides it
    default: int
    unit: str        # "bytes", "nodes", "pixels", "files", "samples"
    reason: str      # one line: why this value

    @property
    def env(self) -> str:
        return f"GENBENCH_LIMIT_{self.name}"

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = int(float(raw)) if any(c in raw for c in ".eE") else int(raw)
        except (ValueError, OverflowError):
            value = -1
        if value < 1:
            raise GenbenchError(f"{self.env}={raw!r} is not a positive whole number",
                                f"unset it, or give a number of {self.unit} (default {self.default})")
        return value

    def show(self, amount: int | None = None) -> str:
        amount = self.value if amount is None else amount
        return show_bytes(amount) if self.unit == "bytes" else f"{amount:,} {self.unit}"

    def raise_hint(self) -> str:
        return f"or raise the limit: {self.env}=<{self.unit}>"

    def fix(self, fix: str) -> str:
        """``fix`` followed by how to raise this limit."""
        return f"{fix}; {self.raise_hint()}" if fix else self.raise_hint()[3:]


# --------------------------------------------------------------------------------- the limits

CONFIG_FILE_BYTES = Limit("CONFIG_FILE_BYTES", 1 * MiB, "bytes",
                          "configs and study presets are a few KB; 1 MiB is far beyond any real one")
YAML_NODES = Limit("YAML_NODES", 1_000_000, "nodes",
                   "values after expanding &anchor/*alias; an alias-free file within the size limit never "
                   "reaches it, a 'billion laughs' bomb does at once")
DATA_FILE_BYTES = Limit("DATA_FILE_BYTES", 2 * GiB, "bytes",
                        "one decoded dataset file (IDX); MNIST's largest decodes to 47 MB")
CIFAR_BATCH_BYTES = Limit("CIFAR_BATCH_BYTES", 256 * MiB, "bytes",
                          "one CIFAR-10 pickle batch; the official ones are 31 MB")
CIFAR_ARCHIVE_BYTES = Limit("CIFAR_ARCHIVE_BYTES", 4 * GiB, "bytes",
                            "the CIFAR-10 tar.gz read as the dataset; the official one is 163 MB")
IMAGE_PIXELS = Limit("IMAGE_PIXELS", 89_478_485, "pixels",
                     "one PNG/JPEG in an image folder; PIL's own decompression-bomb limit")
FOLDER_IMAGES = Limit("FOLDER_IMAGES", 10_000_000, "files",
                      "images in one image folder, all held in memory; ImageNet has 1.3 million")
DATASET_BYTES = Limit("DATASET_BYTES", 64 * GiB, "bytes",
                      "a dataset held in memory as uint8 (an image folder after resizing)")
SAMPLES = Limit("SAMPLES", 10_000_000, "samples",
                "samples one `genbench sample`/`eval` holds in memory; FID-50k needs 50,000")
GRID_FILE_BYTES = Limit("GRID_FILE_BYTES", 256 * MiB, "bytes",
                        "a run's sample grid PNG, read into the report; 256 CIFAR-10 samples make 200 KB")
CHECKPOINT_BYTES = Limit("CHECKPOINT_BYTES", 64 * GiB, "bytes",
                         "one checkpoint, loaded whole; a 1-billion-parameter net's is about 16 GB")
SIDECAR_BYTES = Limit("SIDECAR_BYTES", 4 * KiB, "bytes",
                      "a checkpoint's .sha256 sidecar holds 65 bytes")
JSON_FILE_BYTES = Limit("JSON_FILE_BYTES", 256 * MiB, "bytes",
                        "run.json and evaluation JSON files are a few KB")
LOG_FILE_BYTES = Limit("LOG_FILE_BYTES", 4 * GiB, "bytes",
                       "a run's metrics.jsonl; a million log lines are about 300 MB")
WEIGHTS_FILE_BYTES = Limit("WEIGHTS_FILE_BYTES", 2 * GiB, "bytes",
                           "the Inception-v3 weights file given for FID; the real one is 92 MB")
NPZ_FILE_BYTES = Limit("NPZ_FILE_BYTES", 16 * GiB, "bytes",
                       "a cached feature file (.npz); 50,000 Inception features are 400 MB")
SAMPLE_ARRAY_BYTES = Limit("SAMPLE_ARRAY_BYTES", 16 * GiB, "bytes",
                           "one decoded .npy/.npz array of samples to score; 50,000 CIFAR-10 images are "
                           "150 MB as uint8, 600 MB as float32")

ALL = (CONFIG_FILE_BYTES, YAML_NODES, DATA_FILE_BYTES, CIFAR_BATCH_BYTES, CIFAR_ARCHIVE_BYTES, IMAGE_PIXELS,
       FOLDER_IMAGES, DATASET_BYTES, SAMPLES, GRID_FILE_BYTES, CHECKPOINT_BYTES, SIDECAR_BYTES, JSON_FILE_BYTES,
       LOG_FILE_BYTES, WEIGHTS_FILE_BYTES, NPZ_FILE_BYTES, SAMPLE_ARRAY_BYTES)


def show_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------- files

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def check_file(path: str | Path, limit: Limit, what: str, fix: str) -> int:
    """The size of ``path`` (a ``what`` file), after refusing what is not a regular file (a link
    to /dev/zero, a FIFO: reading those never ends) or is larger than ``limit``."""
    try:
        st = os.stat(path)    # follows symlinks: a link to a regular file is fine
    except OSError as err:
        raise GenbenchError(f"cannot read {what} '{path}': {err.strerror or err}", fix) from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        via = " (through a symbolic link)" if os.path.islink(path) else ""
        raise GenbenchError(f"{what} '{path}' is {kind}{via}, not a regular file; genbench reads only regular files",
                            fix)
    if st.st_size > limit.value:
        raise GenbenchError(
            f"{what} '{path}' is {show_bytes(st.st_size)}, above the limit of {limit.show()} ({limit.reason})",
            limit.fix(fix))
    return st.st_size


def read_bytes(path: str | Path, limit: Limit, what: str, fix: str) -> bytes:
    """The bytes of ``path``, checked by :func:`check_file` first and read at most up to the limit."""
    check_file(path, limit, what, fix)
    cap = limit.value
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as err:
        raise GenbenchError(f"cannot read {what} '{path}': {err.strerror or err}", fix) from None
    if len(data) > cap:     # it grew after the check
        raise GenbenchError(f"{what} '{path}' is larger than the limit of {limit.show()} ({limit.reason})",
                            limit.fix(fix))
    return data


def read_text(path: str | Path, limit: Limit, what: str, fix: str) -> str:
    """:func:`read_bytes` decoded as UTF-8 (undecodable bytes refused in one line)."""
    data = read_bytes(path, limit, what, fix)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise GenbenchError(f"{what} '{path}' is not UTF-8 text (byte {err.start} is 0x{data[err.start]:02x})",
                            fix) from None


# --------------------------------------------------------------------------------- YAML


class YamlTooLarge(Exception):
    """A YAML document whose aliases expand past :data:`YAML_NODES`, or that refers to itself."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes in ``root`` with every alias expanded (counted without expanding; each shared node
    once, times its uses). Raises :class:`YamlTooLarge` past ``limit`` or on a recursive alias."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size = 1 + sum(sizes[id(c)] for c in _children(node))
            if size > limit:
                raise YamlTooLarge(f"its aliases (&anchor/*alias) expand it to more than {limit:,} nodes")
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlTooLarge("an alias refers to a node that contains it (a recursive structure)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document whose expanded size passes :data:`YAML_NODES`
    before constructing it (aliases are shared while loading, but expanded by whatever reads them)."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        expanded_size(node, YAML_NODES.value)
        return node


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` with the same results, refusing alias bombs and deep nesting.

    Raises ``yaml.YAMLError`` for invalid YAML (as ``safe_load``) and :class:`YamlTooLarge` for a
    document too large or too deeply nested to load safely.
    """
    try:
        return yaml.load(text, Loader=_BoundedLoader)   # a SafeLoader subclass: no Python objects
    except RecursionError:
        raise YamlTooLarge("it is nested too deeply") from None


# --------------------------------------------------------------------------------- memory


def _read_int(path: str) -> int | None:
    try:
        raw = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(raw) if raw.isdigit() else None


def available_memory() -> int | None:
    """Bytes of memory this process can still use: MemAvailable, capped by a cgroup limit; None if unknown."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_int(limit_file), _read_int(usage_file)
        if cap is not None and used is not None and cap < (1 << 60):
            found = min(found, max(0, cap - used))
            break
    return found


def check_memory(need: int, what: str, fix: str, available: int | None = None, where: str = "memory") -> None:
    """Refuse ``what`` (e.g. "2,000,000 samples of 3x32x32") when its estimated ``need`` in bytes
    exceeds the memory available (``available``, else :func:`available_memory`; unknown: no check)."""
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise GenbenchError(f"{what} would need about {show_bytes(need)} of {where}, "
                            f"but only {show_bytes(available)} is available", fix)


def check_count(count: int, limit: Limit, what: str, fix: str) -> None:
    """Refuse a ``count`` (of samples, files, pixels) above ``limit``."""
    if count > limit.value:
        raise GenbenchError(f"{what}: {count:,} {limit.unit} is above the limit of {limit.show()} ({limit.reason})",
                            limit.fix(fix))


SEED_BYTES = 48   # one seed: a Python int in a list, and its int64 copy


def check_sample_count(n: int, option: str = "-n") -> None:
    """Refuse ``n`` samples above :data:`SAMPLES`, or whose seeds alone would not fit in memory,
    before anything (even the seeds) is allocated."""
    fix = f"ask for fewer samples, e.g. {option} 50000"
    check_count(n, SAMPLES, f"{option} {n:,}", fix)
    check_memory(n * SEED_BYTES, f"the seeds of {option} {n:,} samples", fix)


def check_sample_memory(n: int, shape: tuple[int, ...], option: str = "-n", per_sample_extra: int = 0) -> None:
    """Refuse ``n`` samples of ``shape`` (float32) before any is drawn when they would not fit in
    the memory available: the samples, a copy while gathering them, their uint8 output, their
    seeds, and ``per_sample_extra`` bytes each (e.g. for features)."""
    elems = 1
    for s in shape:
        elems *= int(s)
    per_sample = 2 * 4 * elems + elems + SEED_BYTES + per_sample_extra
    dims = "x".join(str(int(s)) for s in shape)
    available = available_memory()
    fits = f" (at most about {available // per_sample:,} fit now)" if available is not None else ""
    check_memory(n * per_sample, f"{option} {n:,} samples of {dims}", f"ask for fewer samples with {option}{fits}",
                 available=available)
