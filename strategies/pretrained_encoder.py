from strategies.registry import Strategy, copy_into, register_strategy, transfer_report


@register_strategy("pretrained-encoder")
class PretrainedEncoder(Strategy):
    description = ("trunk encoder from a denoising autoencoder (non-adversarial): "
                   "does any pretraining help, or the adversarial translation?")
    needs = ("autoencoder",)

    def initialize(self, G, D, pretexts):
        source = pretexts["autoencoder"].state["trunk"]
        return transfer_report(encoder=copy_into(G.trunk, source, "encoder"))
