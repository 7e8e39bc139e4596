"""Example strategy plugin: the CycleGAN T2->T1 generator's trunk AND its T1 discriminator's
body (every layer but D's head, which stays fresh in every recipe).

Run it with:  bench run --plugin examples/cyclegan_with_d.py --strategy cyclegan-with-d,scratch
"""

from strategies import Strategy, copy_into, register_strategy, transfer_report


@register_strategy("cyclegan-with-d")
class CycleGanWithD(Strategy):
    description = "trunk from the CycleGAN T2->T1 generator, D from its T1 discriminator"
    needs = ("cyclegan",)  # pretext artifacts the harness trains (once) and hands to initialize

    def initialize(self, G, D, pretexts):
        cyclegan = pretexts["cyclegan"].state  # state dicts: G_t2t1, G_t1t2, D_t1, D_t2
        counts = {part: copy_into(G.trunk, cyclegan["G_t2t1"], part)
                  for part in ("encoder", "residual", "decoder")}
        counts["discriminator"] = copy_into(D, cyclegan["D_t1"], "model")
        return transfer_report(**counts)  # parameter counts per part, stored in results
