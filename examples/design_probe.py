"""One unit of the harness with settings overridden, for the generator's design record
(docs/stabilized-recipe.md): its curve as positions on the leading metric (0: the other held-out
split, 1: this seed's untrained generator) with the known modes covered, the noise's spread per
stage of G before and after training (bench/noise_path.py), and 32 final samples.

    python examples/design_probe.py --design adain --seed 0 --set image_size=32 --set n_blocks=4 \
        --set steps=1500 --set eval_every=300 --out runs/probe
"""
import argparse
import dataclasses
import json
import time
from pathlib import Path
import torch
import datasets
from bench.profiles import get_settings
from bench.config import default_cache
from bench.unit import prepare_task, build_unit, train
from bench.noise_path import spread_by_stage
from bench.metrics.events import evaluations
from bench.metrics.registry import LEADING, Sample
from bench.metrics.defects import dark_boxes, checkerboard_energy
from bench.nets import MinibatchStd, _conv, init_weights, count_parameters


class PixelNorm(torch.nn.Module):
    def forward(self, x):
        return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()


class ProgressiveControl(torch.nn.Module):
    """A control for what this machine can learn at all, not a harness design: a ProGAN-type
    generator (z -> a 4-pixel-side map, then per doubling: nearest resize and two 3x3
    convolutions, each followed by pixel norm and LeakyReLU 0.2; a 3x3 convolution and tanh), of
    about the trunk's cost at the probe's size (widths 8, 4, 2, 1 x ngf from the smallest map
    up). Pixel norm, not batch norm: the evaluated EMA copy would run batch norm on running
    statistics gathered by other weights (a first try with batch norm stayed at 0.94)."""

    def __init__(self, dims, image_size, z_dim, ngf):
        super().__init__()
        self.z_dim, self.dims = z_dim, dims
        n_up = (image_size // 4).bit_length() - 1
        ch = [ngf * 2 ** max(n_up - i, 0) for i in range(n_up + 1)]
        self.fc = torch.nn.Linear(z_dim, ch[0] * 4 ** dims)
        self.ch0 = ch[0]
        act = [PixelNorm(), torch.nn.LeakyReLU(0.2, True)]
        layers = list(act)
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers += [torch.nn.Upsample(scale_factor=2, mode="nearest"),
                       _conv(dims, cin, cout, 3, pad=1), *act, _conv(dims, cout, cout, 3, pad=1), *act]
        layers += [_conv(dims, ch[-1], 1, 3, pad=1), torch.nn.Tanh()]
        self.body = torch.nn.Sequential(*layers)

    def forward(self, z):
        return self.body(self.fc(z).view(len(z), self.ch0, *[4] * self.dims))

class ProgressiveD(torch.nn.Module):
    """A control for the fixed D, not a harness design: ProGAN's D at about the PatchGAN's cost
    (per halving two 3x3 convolutions with LeakyReLU 0.2, then average pooling; widths from
    max(ndf / 4, 8), doubling, at most 8 times that; no norm), the minibatch standard deviation
    at 4 pixels, a 3x3 convolution and a linear layer to one score per image."""

    def __init__(self, dims, image_size, ndf, mbstd_group):
        super().__init__()
        base = max(ndf // 4, 8)
        n_down = (image_size // 4).bit_length() - 1
        w = [min(base * 2 ** i, 8 * base) for i in range(n_down + 1)]
        act = lambda: torch.nn.LeakyReLU(0.2, True)  # noqa: E731
        pool = torch.nn.AvgPool2d if dims == 2 else torch.nn.AvgPool3d
        layers = [_conv(dims, 1, w[0], 1), act()]
        for cin, cout in zip(w[:-1], w[1:]):
            layers += [_conv(dims, cin, cin, 3, pad=1), act(), _conv(dims, cin, cout, 3, pad=1),
                       act(), pool(2)]
        self.model = torch.nn.Sequential(*layers)
        self.head = torch.nn.Sequential(
            MinibatchStd(mbstd_group) if mbstd_group else torch.nn.Identity(),
            _conv(dims, w[-1] + (mbstd_group > 0), w[-1], 3, pad=1), act(), torch.nn.Flatten(),
            torch.nn.Linear(w[-1] * 4 ** dims, 1))

    def forward(self, x):
        return self.head(self.model(x))


class RichStem(torch.nn.Module):
    """A candidate for the harness (the issue's richer stem), not yet a setting: the harness's G,
    plus the progressive control's body (its ngf-channel, full-resolution features, no tanh)
    through a fresh 1x1 projection added after the encoder's first block. The projection starts
    at zero, so G starts as exactly the harness's G, and every trunk weight keeps its name."""

    def __init__(self, G, s):
        super().__init__()
        self.stem, self.trunk, self.z_dim, self.dims = G.stem, G.trunk, G.z_dim, s.dims
        body = ProgressiveControl(s.dims, s.image_size, s.z_dim, s.ngf)
        init_weights(body)
        self.fc, self.ch0 = body.fc, body.ch0
        self.features = torch.nn.Sequential(*list(body.body)[:-2])
        self.project = _conv(s.dims, s.ngf, s.ngf, 1)
        torch.nn.init.zeros_(self.project.weight), torch.nn.init.zeros_(self.project.bias)

    def forward(self, z):
        f = self.features(self.fc(z).view(len(z), self.ch0, *[4] * self.dims))
        x = self.trunk.encoder[:3](self.stem(z)) + self.project(f)
        return self.trunk.decoder(self.trunk.residual(self.trunk.encoder[3:](x)))


p = argparse.ArgumentParser()
p.add_argument("--dims", type=int, default=2)
p.add_argument("--design", default="stem")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--strategy", default="scratch")
p.add_argument("--set", action="append", default=[], help="NAME=VALUE: a setting overridden")
p.add_argument("--d-norm", default="instance", choices=["instance", "none"],
               help="none: D without its instance norms (a candidate, not yet a setting)")
p.add_argument("--generator", default="trunk", choices=["trunk", "progressive", "richstem"],
               help="progressive: the ProgressiveControl generator instead of stem + trunk; "
                    "richstem: the RichStem candidate")
p.add_argument("--pretext-only", action="store_true",
               help="train (or load) the strategy's pretexts, print their scores and stop")
p.add_argument("--discriminator", default="patchgan", choices=["patchgan", "progressive"],
               help="progressive: the ProgressiveD control instead of the PatchGAN")
p.add_argument("--out", default="runs/probe/out")
a = p.parse_args()
over = {"noise_input": a.design}
for kv in a.set:
    k, v = kv.split("=")
    cur = getattr(get_settings("quick", a.dims), k)
    over[k] = type(cur)(v) if not isinstance(cur, bool) else v == "1"
s = dataclasses.replace(get_settings("quick", a.dims), **over)
name = (f"{a.dims}d-{a.strategy}-{a.design}-s{a.seed}" + "".join(f"-{kv}" for kv in a.set)
        + ("-dnorm=none" if a.d_norm == "none" else "")
        + ("" if a.generator == "trunk" else f"-{a.generator}")
        + ("" if a.discriminator == "patchgan" else f"-D{a.discriminator}"))
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
spec = datasets.get_task(f"phantom-{a.dims}d")
task = prepare_task(spec, s, torch.device("cpu"), "auto", default_cache(), 0, False, inception=False)
ev = task.evaluator
floor = ev.fid(Sample(ev.other))
unit = build_unit(task, a.strategy, a.seed, 0)
if a.pretext_only:
    for art in unit.pretexts.values():
        print(name, art.name, {k: v for k, v in art.info.items() if not isinstance(v, dict)})
    raise SystemExit(0)
if a.d_norm == "none":
    for i, m in enumerate(unit.D.model):
        if isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)):
            unit.D.model[i] = torch.nn.Identity()
if a.generator == "progressive":
    torch.manual_seed(a.seed)
    unit.G = init_weights(ProgressiveControl(a.dims, s.image_size, s.z_dim, s.ngf))
if a.discriminator == "progressive":
    torch.manual_seed(a.seed + 1000)
    unit.D = ProgressiveD(a.dims, s.image_size, s.ndf, s.mbstd_group)  # PyTorch's own init: no norm
if a.generator == "richstem":
    with torch.no_grad():
        before = unit.G(torch.randn(4, s.z_dim, generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(a.seed)
    unit.G = RichStem(unit.G, s)
    with torch.no_grad():  # the fresh path starts at zero: G is the harness's G
        after = unit.G(torch.randn(4, s.z_dim, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(before, after)
z = torch.randn(64, s.z_dim, generator=torch.Generator().manual_seed(123))
trunk = a.generator != "progressive"
spread0 = spread_by_stage(unit.G, z) if trunk else None
tic = time.time()
res = train(task, unit, None, name)
wall = time.time() - tic
ceiling = res.curve[0].get(LEADING)
rows = [{"step": p.step, "fid": p.get(LEADING),
         "pos": None if p.get(LEADING) is None else (p.get(LEADING) - floor) / (ceiling - floor),
         "modes": p.get("modes_covered"), "k": p.get("modes_k"), "cov": p.get("coverage")}
        for p in evaluations(res.curve)]
G = unit.G
spread1 = spread_by_stage(G, z) if trunk else None
rec = {"name": name, "modes_k": len(ev.modes.modes(ev.n)) if ev.modes else None, "settings": over, "precision": task.precision, "g_parameters": count_parameters(unit.G),
       "d_parameters": count_parameters(unit.D), "floor": floor,
       "ceiling": ceiling, "train_seconds": res.train_seconds, "wall": wall,
       "sec_per_step": res.train_seconds / s.steps, "curve": rows,
       "spread_init": spread0, "spread_end": spread1,
       # the visible defects of the final samples against the other held-out split's images
       "dark_boxes": float(dark_boxes(res.samples).float().mean()),
       "dark_boxes_real": float(dark_boxes(ev.other).float().mean()),
       "checkerboard": float(checkerboard_energy(res.samples).mean()),
       "checkerboard_real": float(checkerboard_energy(ev.other).mean())}
(out / f"{name}.json").write_text(json.dumps(rec, indent=1))
torch.save(res.samples[:32], out / f"{name}.samples.pt")
print(name, f"{rec['sec_per_step']:.3f}s/step boxes {rec['dark_boxes']:.3f}"
      f" checker {rec['checkerboard']:.4f}/{rec['checkerboard_real']:.4f}", " ".join(
    f"{r['step']}:{r['pos']:.3f}/{r['modes']}" for r in rows))
