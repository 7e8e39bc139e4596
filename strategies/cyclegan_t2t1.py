from strategies.registry import Strategy, copy_trunk, register_strategy, transfer_report


@register_strategy("cyclegan-t2t1")
class CycleGanT2T1(Strategy):
    description = "whole trunk (encoder, residual, decoder) from the CycleGAN T2->T1 generator"
    needs = ("cyclegan",)

    def initialize(self, G, D, pretexts):
        source = pretexts["cyclegan"].state["G_t2t1"]
        return transfer_report(**copy_trunk(G, source))
