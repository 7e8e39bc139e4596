"""Out of memory: recognised however PyTorch raised it, and explained as the settings to lower."""

from ground.errors import BenchError


def out_of_memory(err: BaseException) -> bool:
    """A failed allocation on the GPU (or the host), whichever way PyTorch raised it."""
    import torch
    return (isinstance(err, torch.OutOfMemoryError)
            or (isinstance(err, RuntimeError) and "can't allocate memory" in str(err)))


def memory_error(profile: str, doing: str | None = None, s=None) -> BenchError:
    """The one-line error for an allocation failure (while `doing`, with settings `s` when
    known), naming the profile settings to lower."""
    where = f" while {doing}" if doing else ""
    if s is not None:
        lower = (f"batch_size ({s.batch_size}), pretext_batch ({s.pretext_batch}), domain_batch "
                 f"({s.domain_batch}) or image_size ({s.image_size}) under [{profile}.{s.dims}d]")
    else:
        lower = f"batch_size, pretext_batch, domain_batch or image_size under [{profile}.2d/3d]"
    # Units finished so far ran with the old settings: resuming with new ones would mix them.
    return BenchError(f"out of memory{where}: lower {lower} in bench/profiles.toml, or use a "
                      "smaller --profile, and run into a new --out")
