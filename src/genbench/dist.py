"""Several processes under ``torchrun``: one process group, rank helpers, seed sharding, gathers.

``torchrun`` starts one process per device and sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT; :func:`init` joins the group when WORLD_SIZE > 1 and does nothing otherwise, so a
plain ``genbench`` process behaves exactly as before (rank 0 of a world of 1, every collective a
no-op). Backend: gloo for CPU tensors and, where CUDA exists, NCCL for CUDA tensors
(``cpu:gloo,cuda:nccl``), each process on ``cuda:LOCAL_RANK``. Small host-side decisions (a
minutes budget, gathered samples) go over gloo, so they never wait for the GPU.
"""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Sequence

import torch
import torch.distributed as tdist
from torch import Tensor

from genbench.errors import GenbenchError

# rank 0 alone writes grids, proxy evaluations and checkpoints while the others wait
TIMEOUT = datetime.timedelta(minutes=60)


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when not launched by torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init() -> bool:
    """Join the process group when launched with WORLD_SIZE > 1; True when in one. Idempotent."""
    if is_initialized():
        return True
    if env_world_size() <= 1:
        return False
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise GenbenchError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set",
                            "launch with torchrun (e.g. torchrun --standalone --nproc_per_node=N -m genbench ...)")
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise GenbenchError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices",
                                "set --nproc_per_node to at most the number of GPUs per node")
        torch.cuda.set_device(local)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    tdist.init_process_group(backend, timeout=TIMEOUT)
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    if is_initialized():
        tdist.destroy_process_group()


def is_initialized() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        tdist.barrier()


def cuda_device() -> torch.device:
    """This process's GPU under torchrun: cuda:LOCAL_RANK."""
    return torch.device("cuda", local_rank())


def pick_device(name: str, knob: str = "train.device") -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` as a device; ``cuda`` under torchrun is this process's own GPU.
    ``knob`` is the setting the user gave it with (``train.device`` or ``--device``), named in errors."""
    if name == "cuda" and not torch.cuda.is_available():
        sep = " " if knob.startswith("-") else "="
        raise GenbenchError(f"{knob}{sep}cuda but no CUDA device is available",
                            f"use {knob}{sep}auto or {knob}{sep}cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":   # under torchrun: cuda:LOCAL_RANK
        return cuda_device() if is_initialized() else torch.device("cuda")
    return torch.device(name)


# ----------------------------------------------------------------------------- collectives


def all_reduce_(t: Tensor, op: str = "sum") -> Tensor:
    """In-place all-reduce (``sum``, ``max`` or ``avg``); the identity in a world of 1."""
    if world_size() > 1:
        if op == "avg":
            tdist.all_reduce(t, tdist.ReduceOp.SUM)
            t.div_(world_size())
        else:
            tdist.all_reduce(t, {"sum": tdist.ReduceOp.SUM, "max": tdist.ReduceOp.MAX}[op])
    return t


def agree_max(value: float) -> float:
    """The largest ``value`` over the ranks (a host decision, over gloo: no GPU wait)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    tdist.all_reduce(t, tdist.ReduceOp.MAX)
    return float(t)


def broadcast_object(obj=None, src: int = 0):
    """Rank ``src``'s Python object on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src, device=torch.device("cpu"))
    return box[0]


def all_gather_objects(obj) -> list:
    """Every rank's Python object, in rank order."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    tdist.all_gather_object(out, obj)
    return out


def collective(fn):
    """Run ``fn()`` on rank 0 only and hand its result, or its GenbenchError, to every rank.

    For steps whose failure must stop all ranks alike (preparing a run directory, say)."""
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except GenbenchError as err:
            error = err
    result, error = broadcast_object((result, error))
    if error is not None:
        raise error
    return result


# ----------------------------------------------------------------------------- sharding


def shard_bounds(n: int, world: int | None = None, r: int | None = None) -> tuple[int, int]:
    """[start, stop) of rank ``r``'s contiguous share of ``n`` items (the first n % world ranks
    take one more), so that concatenating the shares in rank order restores the order."""
    world = world_size() if world is None else world
    r = rank() if r is None else r
    base, extra = divmod(n, world)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def shard(items: Sequence) -> list:
    """This rank's contiguous share of ``items`` (all of them in a world of 1)."""
    start, stop = shard_bounds(len(items))
    return list(items[start:stop])


def gather_samples(x: Tensor | None) -> Tensor | None:
    """Concatenate the ranks' sample shards (CPU tensors, in rank order) on rank 0.

    Rank 0 gets the whole tensor, the others None; in a world of 1 ``x`` comes back. A rank with
    no share passes None. Sent over gloo as they are (no dtype change): bitwise what each made.
    """
    if world_size() == 1:
        return x
    meta = all_gather_objects(None if x is None else (tuple(x.shape), str(x.dtype).split(".")[-1]))
    shapes = [m for m in meta if m is not None]
    if not shapes:
        return None
    tail, dtype = shapes[0][0][1:], getattr(torch, shapes[0][1])
    longest = max(m[0][0] for m in shapes)
    local = torch.zeros((longest, *tail), dtype=dtype)
    if x is not None:
        local[: len(x)] = x.cpu()
    parts = [torch.empty_like(local) for _ in range(world_size())] if is_main() else None
    tdist.gather(local, parts, dst=0)
    if not is_main():
        return None
    return torch.cat([p[: m[0][0]] for p, m in zip(parts, meta, strict=True) if m is not None])
