from strategies.registry import Strategy, copy_trunk, register_strategy, transfer_report


@register_strategy("cyclegan-t1t2")
class CycleGanT1T2(Strategy):
    description = ("control: whole trunk from the reverse CycleGAN generator (T1->T2): does it "
                   "matter that the source already outputs T1 images?")
    needs = ("cyclegan",)

    def initialize(self, G, D, pretexts):
        source = pretexts["cyclegan"].state["G_t1t2"]
        return transfer_report(**copy_trunk(G, source))
