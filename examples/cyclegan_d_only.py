"""Example strategy plugin: only D starts from the CycleGAN, from its T1 discriminator's body
(every layer but D's head, which stays fresh in every recipe); G keeps the fresh harness start.
Does a discriminator that already knows T1 images help on its own?

Run it with:  bench run --plugin examples/cyclegan_d_only.py --strategy cyclegan-d-only,scratch
"""

from strategies import Strategy, copy_into, register_strategy, transfer_report


@register_strategy("cyclegan-d-only")
class CycleGanDOnly(Strategy):
    description = "G fresh, D's body from the CycleGAN's T1 discriminator"
    needs = ("cyclegan",)  # pretext artifacts the harness trains (once) and hands to initialize

    def initialize(self, G, D, pretexts):
        cyclegan = pretexts["cyclegan"].state  # state dicts: G_t2t1, G_t1t2, D_t1, D_t2
        copied = copy_into(D, cyclegan["D_t1"], "model")  # D.model: the body; D.head: fresh
        return transfer_report(discriminator=copied)  # parameter counts per part, into results
