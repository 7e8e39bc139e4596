import torch

from strategies.registry import Strategy, copy_trunk, register_strategy, transfer_report


def shuffled(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every tensor with its values permuted (seeded): the same values, and so the same weight
    statistics, in an order that carries no learned structure."""
    gen = torch.Generator().manual_seed(seed)
    return {name: t.flatten()[torch.randperm(t.numel(), generator=gen)].view_as(t)
            for name, t in sorted(state.items())}


@register_strategy("cyclegan-shuffled")
class CycleGanShuffled(Strategy):
    description = ("control: the CycleGAN T2->T1 trunk with each tensor's values permuted: "
                   "learned features, or only a better weight scale?")
    needs = ("cyclegan",)

    def initialize(self, G, D, pretexts):
        artifact = pretexts["cyclegan"]
        # Seeded by the pretext's seed: a seed's units share their pretext and its permutation.
        source = shuffled(artifact.state["G_t2t1"], int(artifact.info.get("seed", 0)))
        return transfer_report(**copy_trunk(G, source))
