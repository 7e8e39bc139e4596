from strategies.registry import TRUNK_PARTS, Strategy, copy_into, register_strategy, transfer_report


@register_strategy("autoencoder-trunk")
class AutoencoderTrunk(Strategy):
    description = ("control: whole trunk from a denoising autoencoder trained for the CycleGAN's "
                   "FLOPs: adversarial translation, or any pretraining?")
    needs = ("autoencoder",)

    def initialize(self, G, D, pretexts):
        source = pretexts["autoencoder"].state["trunk"]
        return transfer_report(**{p: copy_into(G.trunk, source, p) for p in TRUNK_PARTS})
