"""Run directories made safely: nothing a user made is ever removed, and nothing genbench made is
removed before its replacement exists.

- **Marker.** A run directory genbench creates holds ``.genbench-run``; only such a directory (or
  one from before the marker: ``config.yaml`` + a ``run.json`` written by genbench) may be
  replaced with ``--overwrite``, and only when it holds nothing but what genbench writes there.
- **Replacing.** ``--overwrite`` moves the old run aside (``.<name>.genbench-replaced`` beside it),
  starts the new one, and deletes the old one only once the new one has written its first
  checkpoint. A start that fails (or is interrupted) before that removes what it created and
  puts the old run back. A process killed in between leaves the aside folder, which the next
  start on that path resolves: restored if the new run has no checkpoint, else deleted.
- **One writer.** A run being trained holds an exclusive ``flock`` on ``<run>/.lock``; a second
  ``train``/``--resume`` on it is refused in one line. The kernel drops the lock when the process
  dies, so a killed run never leaves it stuck.
- **Failed starts.** A new run that fails before its first checkpoint removes only the entries it
  created (a user's files in a pre-existing folder stay), and the folder only if it made it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from genbench import dist
from genbench.config import RunConfig, build_config, dump_config, read_yaml
from genbench.errors import GenbenchError
from genbench.files import atomic_write_bytes, read_json
from genbench.train.checkpoint import list_checkpoints

MARKER = ".genbench-run"
LOCK = ".lock"
# what genbench writes inside a run directory (and nothing else may be there for --overwrite)
RUN_ENTRIES = frozenset({"config.yaml", "run.json", "metrics.jsonl", "tb", "samples", "checkpoints", "eval",
                         MARKER, LOCK})
ASIDE_SUFFIX = ".genbench-replaced"

# keys that may change when a run is resumed: how long it runs and how it reports
RESUMABLE_KEYS = ("train.budget", "train.ckpt_every", "train.sample_every", "train.log_every",
                  "train.device", "train.keep_last", "train.keep_every", "train.tensorboard", "train.divergence_window",
                  "train.divergence_threshold", "train.channels_last", "train.tf32", "train.cudnn_benchmark",
                  "train.compile")


def _is_temp(name: str) -> bool:
    """A temp file of an interrupted atomic write (``.<name>.tmp``): never makes a folder a run."""
    return name.startswith(".") and name.endswith(".tmp")


def has_content(path: Path) -> bool:
    return any(not _is_temp(p.name) for p in path.iterdir()) if path.is_dir() else path.exists()


def made_by_genbench(path: Path) -> bool:
    """Whether ``path`` is a run directory genbench made: its marker, or (runs from before the
    marker) a config.yaml beside a run.json that genbench wrote."""
    if (path / MARKER).is_file():
        return True
    info = path / "run.json"
    if not (path / "config.yaml").is_file() or not info.is_file() or info.stat().st_size > 1 << 20:
        return False
    try:
        return "genbench" in (json.loads(info.read_text()).get("environment") or {})
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


def foreign_entries(path: Path, allowed: frozenset[str] = RUN_ENTRIES) -> list[str]:
    """Entries of ``path`` that genbench does not write there."""
    return sorted(p.name for p in path.iterdir() if p.name not in allowed and not _is_temp(p.name))


def check_replaceable(path: Path, what: str = "run directory", allowed: frozenset[str] = RUN_ENTRIES,
                      made=made_by_genbench) -> None:
    """Refuse to replace anything but a folder genbench made and that holds only what it writes."""
    if not made(path):
        raise GenbenchError(f"refusing to overwrite {path}: it is not a genbench {what} (genbench did not make it)",
                            "choose another output folder; --overwrite only replaces what genbench made")
    foreign = foreign_entries(path, allowed)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise GenbenchError(f"refusing to overwrite {path}: it holds files genbench did not make ({shown})",
                            "move them out first, or choose another output folder")


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/.lock`` (holding the owner's pid)."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise GenbenchError(f"run {folder} is being written by another genbench process"
                                + (f" (pid {pid})" if pid.isdigit() else ""),
                                "wait for it to finish or stop it (a killed process releases the run at once)") \
                from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _in_use(folder: Path) -> bool:
    """Whether another process holds ``folder``'s lock (without creating one in a foreign folder)."""
    if not (folder / LOCK).is_file():
        return False
    try:
        RunLock(folder).release()
    except GenbenchError:
        return True
    return False


def aside_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{ASIDE_SUFFIX}")


def recover_aside(path: Path) -> None:
    """Resolve an old run that an interrupted ``--overwrite`` left aside: if the new run at ``path``
    got a checkpoint, the old one is deleted; otherwise the old one is put back."""
    aside = aside_path(path)
    if not aside.is_dir() or (path.is_dir() and _in_use(path)):
        return
    if path.is_dir() and list_checkpoints(path / "checkpoints"):
        shutil.rmtree(aside)
        return
    if path.is_dir():
        if not made_by_genbench(path) or foreign_entries(path):
            return   # something else is there now: leave both for the user
        shutil.rmtree(path)
    os.rename(aside, path)
    print(f"genbench: note: restored {path}, which an interrupted --overwrite had set aside as {aside.name}",
          file=sys.stderr)


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def merge_resumable(saved: RunConfig, given: RunConfig) -> RunConfig:
    """The run's own config with only the :data:`RESUMABLE_KEYS` taken from ``given``."""
    a, b = _flatten(saved.model_dump(mode="json")), _flatten(given.model_dump(mode="json"))
    tree = saved.model_dump(mode="json")
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if not key.startswith(RESUMABLE_KEYS):
            raise GenbenchError(
                f"cannot resume with a different '{key}' ({a.get(key)!r} in the run, {b.get(key)!r} given)",
                f"only {', '.join(RESUMABLE_KEYS)} may change on resume; start a new run for other changes",
            )
    for key in RESUMABLE_KEYS:
        section = key.split(".", 1)[1]
        tree["train"][section] = given.model_dump(mode="json")["train"][section]
    return build_config(tree)


class RunSession:
    """One process's hold on a run directory, from its start to its end (rank 0 only)."""

    def __init__(self, path: Path, resume: bool, overwrite: bool):
        self.path, self.resume, self.overwrite = Path(path), resume, overwrite
        self.lock: RunLock | None = None
        self.aside: Path | None = None
        self.created_dir = False
        self.before: set[str] = set()
        self.checkpointed = False

    def start(self, cfg: RunConfig) -> RunConfig:
        """Lock the run (creating or reopening it; setting an old one aside for --overwrite) and
        write the config. Returns the config to train with (on resume: the run's own, with only
        the resumable keys taken from ``cfg``)."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise GenbenchError(f"run directory {path} is a file", "choose another --out")
        recover_aside(path)
        if self.resume:
            if not (path / "config.yaml").is_file():
                raise GenbenchError(f"cannot resume: {path} is not a genbench run (no config.yaml)",
                                    "give the run directory of an earlier `genbench train`, or drop --resume")
            self.lock = RunLock(path)
            saved = build_config(read_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
            return merge_resumable(saved, cfg)
        if has_content(path):
            if not self.overwrite:
                raise GenbenchError(f"run directory {path} already exists",
                                    "add --resume to continue it, --overwrite to replace it, or choose --out")
            check_replaceable(path)
            old = RunLock(path)   # refused while another process writes the old run
            try:
                os.rename(path, aside_path(path))
            finally:
                old.release()
            self.aside = aside_path(path)
        try:
            self.created_dir = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            self.before = {p.name for p in path.iterdir()}
            self.lock = RunLock(path)
            atomic_write_bytes(path / MARKER, b'{"genbench_run": 1}\n')
            # atomic: a kill here leaves no half-written config that --resume would trip over
            atomic_write_bytes(path / "config.yaml", dump_config(cfg).encode())
        except OSError as err:
            self.failed()
            raise GenbenchError(f"cannot create run directory {path}: {err.strerror or err}",
                                "choose a writable --out") from None
        except BaseException:
            self.failed()
            raise
        return cfg

    def checkpoint_written(self) -> None:
        """The new run exists: the old one it replaces can go."""
        if not self.checkpointed:
            self.checkpointed = True
            if self.aside is not None:
                shutil.rmtree(self.aside, ignore_errors=True)
                self.aside = None

    def failed(self) -> None:
        """A start that failed before its first checkpoint: remove what this session created and
        put back the run it was to replace."""
        if self.resume or self.checkpointed:
            return
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.name in RUN_ENTRIES and entry.name not in self.before and entry.name != LOCK:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self.close()
        if self.path.is_dir() and LOCK not in self.before:
            (self.path / LOCK).unlink(missing_ok=True)
        if self.path.is_dir() and (self.created_dir or self.aside is not None) and not any(self.path.iterdir()):
            self.path.rmdir()
        if self.aside is not None and not self.path.exists():
            os.rename(self.aside, self.path)
            self.aside = None

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


@contextmanager
def open_run(path: Path, cfg: RunConfig, resume: bool = False, overwrite: bool = False):
    """``with open_run(dir, cfg, ...) as (cfg, on_checkpoint): train(cfg, dir, ..., on_checkpoint)``.

    Rank 0 holds the directory (lock, creation, replacement); under torchrun the other ranks get
    its config, or its refusal. Any failure before the first checkpoint undoes the start."""
    session = RunSession(path, resume, overwrite) if dist.is_main() else None
    cfg = dist.collective(lambda: session.start(cfg))
    try:
        yield cfg, (session.checkpoint_written if session is not None else None)
    except BaseException:
        if session is not None:
            session.failed()
        raise
    else:
        if session is not None:
            session.checkpoint_written()
    finally:
        if session is not None:
            session.close()


def prepare_run_dir(path: Path, cfg: RunConfig, resume: bool = False) -> RunConfig:
    """Create (or reopen) a run directory without holding it: for scripts and tests that train in
    a fresh folder of their own. Commands use :func:`open_run`."""
    session = RunSession(path, resume, overwrite=False)
    try:
        return session.start(cfg)
    finally:
        session.close()


# ----------------------------------------------------------------------------- report folders

REPORT_ENTRIES = frozenset({"report.html", "report.md", "report.json", "img"})


def is_report(path: Path) -> bool:
    return (path / "report.json").is_file() and (path / "report.html").is_file()


def write_folder(out: Path, build, overwrite: bool, what: str = "report folder",
                 allowed: frozenset[str] = REPORT_ENTRIES, made=is_report) -> dict:
    """``build(folder) -> paths`` into ``out``: a new folder directly; an existing one only with
    ``overwrite``, only if genbench made it, and only once its replacement is complete (built in
    a staging folder beside it, then swapped in). Returns ``build``'s paths, under ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GenbenchError(f"{what} {out} is a file", "choose another -o")
    if not has_content(out):
        return build(out)
    if not overwrite:
        raise GenbenchError(f"{what} {out} already exists", "add --overwrite to replace it, or choose another -o")
    check_replaceable(out, what, allowed, made)
    staging = out.with_name(f".{out.name}.genbench-new")
    old = aside_path(out)
    for leftover in (staging, old):   # an earlier replacement that was interrupted
        if leftover.is_dir():
            shutil.rmtree(leftover)
    try:
        paths = build(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
    return {k: out / Path(v).relative_to(staging) if isinstance(v, Path) else v for k, v in paths.items()}


def check_study_folder(out: Path, name: str) -> None:
    """A study continues in its own folder; any other non-empty folder is refused."""
    info = out / "study.json"
    if not has_content(out):
        return
    if not info.is_file():
        raise GenbenchError(f"study folder {out} exists and is not a genbench study (no study.json)",
                            "choose another --out; a study continues only in its own folder")
    found = read_json(info, "choose another --out, or delete the study folder to start it again",
                      "study record").get("name")
    if found != name:
        raise GenbenchError(f"study folder {out} holds the study {found!r}, not {name!r}",
                            "choose another --out for this study")
