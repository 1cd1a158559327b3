"""The little the binding needs from PyTorch, all optional.

torch is never a dependency: every function here returns a neutral answer
when torch is missing, when CUDA is not available or not yet initialised, or
when torch.distributed is not initialised. Nothing here creates a CUDA
context.
"""

import sys


def _torch(import_torch):
    if import_torch:
        try:
            import torch  # noqa: F401  (the import puts it in sys.modules)
        except Exception:  # ImportError, or a broken install: no torch then
            return None
    return sys.modules.get("torch")


def cuda_memory(import_torch=False):
    """(allocated_bytes, reserved_bytes) of torch's caching allocator on the
    current CUDA device, or None without torch / CUDA / an initialised CUDA
    context. ``import_torch``: import torch if nobody has yet (slow, seconds);
    otherwise only an already imported torch is used."""
    torch = _torch(import_torch)
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        return int(torch.cuda.memory_allocated()), int(torch.cuda.memory_reserved())
    except Exception:  # a driver error must not break a memory check
        return None


def free_cuda_cache():
    """gc.collect() and torch.cuda.empty_cache() when CUDA is in use: what
    the seed did before saving ("free memory")."""
    import gc
    gc.collect()
    torch = _torch(False)
    if torch is not None:
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.empty_cache()
        except Exception:
            pass


def _dist():
    torch = _torch(False)
    if torch is None:
        return None
    try:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist
    except Exception:
        pass
    return None


def distributed_rank():
    """This process's rank, or None outside an initialised process group."""
    dist = _dist()
    return None if dist is None else dist.get_rank()


def _device(dist):
    """Where a collective's tensor lives: the current CUDA device for NCCL,
    the CPU for the other backends."""
    torch = sys.modules["torch"]
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def lowest_rank_with(flag):
    """Under torch.distributed: the lowest rank whose ``flag`` is true, or
    None when no rank's is. One all-reduce (MIN) of each rank's number, or
    of the world size where the flag is false. Every rank must call it at the
    same step. Outside torch.distributed: 0 when ``flag``, else None."""
    dist = _dist()
    if dist is None:
        return 0 if flag else None
    torch = sys.modules["torch"]
    world = dist.get_world_size()
    t = torch.tensor([dist.get_rank() if flag else world], dtype=torch.int64,
                     device=_device(dist))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    lowest = int(t.item())
    return None if lowest >= world else lowest


def broadcast_text(text, src):
    """``text`` (a str or None) of rank ``src`` on every rank
    (broadcast_object_list); every rank must call it with the same ``src``.
    Outside torch.distributed: ``text`` itself."""
    dist = _dist()
    if dist is None:
        return text
    box = [text]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier():
    """dist.barrier() inside a process group, else nothing."""
    dist = _dist()
    if dist is not None:
        dist.barrier()
