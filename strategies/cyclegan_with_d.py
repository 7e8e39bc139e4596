from strategies.registry import Strategy, copy_into, copy_trunk, register_strategy, transfer_report


@register_strategy("cyclegan-with-d")
class CycleGanWithD(Strategy):
    description = ("trunk from the CycleGAN T2->T1 generator and D's body from its T1 "
                   "discriminator (D's head stays fresh)")
    needs = ("cyclegan",)

    def initialize(self, G, D, pretexts):
        cyclegan = pretexts["cyclegan"].state
        counts = copy_trunk(G, cyclegan["G_t2t1"])
        counts["discriminator"] = copy_into(D, cyclegan["D_t1"], "model")
        return transfer_report(**counts)
