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


def all_reduce_max(flag):
    """``flag`` (bool) OR-ed over every rank (an all-reduce with MAX), or
    ``flag`` itself outside torch.distributed. Every rank must call it at the
    same step. The tensor lives on the current CUDA device for NCCL, on the
    CPU for the other backends."""
    dist = _dist()
    if dist is None:
        return flag
    torch = sys.modules["torch"]
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier():
    """dist.barrier() inside a process group, else nothing."""
    dist = _dist()
    if dist is not None:
        dist.barrier()
