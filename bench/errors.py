"""The one user-facing error type: the CLI prints its message on one line and exits with 2."""


class BenchError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""


def out_of_memory(err: BaseException) -> bool:
    """A failed allocation on the GPU (or the host), whichever way PyTorch raised it."""
    import torch
    return (isinstance(err, torch.OutOfMemoryError)
            or (isinstance(err, RuntimeError) and "can't allocate memory" in str(err)))


def memory_error(doing: str, device, s) -> BenchError:
    """The one-line error for an allocation failure while `doing`, naming what to lower."""
    return BenchError(
        f"out of memory on {device} while {doing}: lower batch_size ({s.batch_size}), "
        f"pretext_batch ({s.pretext_batch}) or image_size ({s.image_size}) under "
        f"[{s.profile}.{s.dims}d] in bench/profiles.toml, or use a smaller --profile; finished "
        "units are kept and the same command resumes")
