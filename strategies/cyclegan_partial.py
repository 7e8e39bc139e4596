from strategies.registry import Strategy, copy_into, register_strategy, transfer_report


@register_strategy("cyclegan-partial")
class CycleGanPartial(Strategy):
    description = "only some trunk parts from the CycleGAN T2->T1 generator (default residual+decoder)"
    needs = ("cyclegan",)
    parts: tuple[str, ...] = ("residual", "decoder")

    def search_space(self, trial):
        super().search_space(trial)
        trial.suggest_categorical("parts", ["residual,decoder", "decoder", "encoder,residual",
                                            "encoder"])

    def configure(self, params):
        if "parts" in params:
            self.parts = tuple(params["parts"].split(","))

    def initialize(self, G, D, pretexts):
        source = pretexts["cyclegan"].state["G_t2t1"]
        return transfer_report(**{p: copy_into(G.trunk, source, p) for p in self.parts})
