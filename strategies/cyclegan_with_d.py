from strategies.registry import TRUNK_PARTS, Strategy, copy_into, register_strategy, transfer_report


@register_strategy("cyclegan-with-d")
class CycleGanWithD(Strategy):
    description = ("trunk from the CycleGAN T2->T1 generator and D's body from its T1 "
                   "discriminator (D's head stays fresh)")
    needs = ("cyclegan",)

    def initialize(self, G, D, pretexts):
        cyclegan = pretexts["cyclegan"].state
        counts = {p: copy_into(G.trunk, cyclegan["G_t2t1"], p) for p in TRUNK_PARTS}
        counts["discriminator"] = copy_into(D, cyclegan["D_t1"], "model")
        return transfer_report(**counts)
