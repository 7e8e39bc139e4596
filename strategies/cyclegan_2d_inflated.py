from strategies.inflate import inflate_state
from strategies.registry import Strategy, copy_trunk, register_strategy, transfer_report


@register_strategy("cyclegan-2d-inflated")
class CycleGan2dInflated(Strategy):
    description = ("control, 3D only: the trunk of a 2D CycleGAN T2->T1 trained on the task's "
                   "axial slices, inflated to 3D: is a cheap 2D pretext a good 3D start?")
    needs = ("cyclegan-2d",)
    dims = (3,)

    def initialize(self, G, D, pretexts):
        source = inflate_state(G.trunk, pretexts["cyclegan-2d"].state["G_t2t1"])
        return transfer_report(**copy_trunk(G, source))
