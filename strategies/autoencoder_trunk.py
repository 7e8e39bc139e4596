from strategies.registry import Strategy, copy_trunk, register_strategy, transfer_report


@register_strategy("autoencoder-trunk")
class AutoencoderTrunk(Strategy):
    description = ("control: whole trunk from a denoising autoencoder trained for the CycleGAN's "
                   "FLOPs: adversarial translation, or any pretraining?")
    needs = ("autoencoder",)

    def initialize(self, G, D, pretexts):
        source = pretexts["autoencoder"].state["trunk"]
        return transfer_report(**copy_trunk(G, source))
