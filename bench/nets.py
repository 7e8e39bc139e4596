"""The fixed networks, written once for 2D and 3D (``spatial_dims``), as MONAI's blocks are.

Generator G = noise stem + CycleGAN ResNet trunk, and, by the harness setting `noise_input`,
fresh layers through which z also reaches the trunk's inside (NOISE_INPUTS). The trunk's parts
are named ``encoder``, ``residual`` and ``decoder`` so strategies can transfer parts by name, and
the CycleGAN pretext builds its generators from the same :class:`ResnetTrunk` so weights map one
to one: the fresh layers live outside the trunk, and start as the identity.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv, Norm
from torch import nn


def _conv(dims: int, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0,
          mode: str = "zeros") -> nn.Module:
    return Conv[Conv.CONV, dims](cin, cout, k, stride=stride, padding=pad, padding_mode=mode)


def _norm(dims: int, ch: int) -> nn.Module:
    # CycleGAN's default: instance norm without affine parameters or running statistics.
    return Norm[Norm.INSTANCE, dims](ch, affine=False, track_running_stats=False)


_INSTANCE_NORMS = (nn.InstanceNorm2d, nn.InstanceNorm3d)


def _run(layers: nn.Sequential, x: torch.Tensor, hooks) -> torch.Tensor:
    """`layers` on x; with `hooks` (an iterator of functions, one per instance norm in order),
    every instance norm's output goes through its function (Modulation's and PixelNoise's)."""
    for layer in layers:
        if isinstance(layer, ResidualBlock):
            x = layer(x, hooks)
            continue
        x = layer(x)
        if hooks is not None and isinstance(layer, _INSTANCE_NORMS):
            x = next(hooks)(x)
    return x


class ResidualBlock(nn.Module):
    def __init__(self, dims: int, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(dims, ch, ch, 3, pad=1, mode="reflect"), _norm(dims, ch), nn.ReLU(True),
            _conv(dims, ch, ch, 3, pad=1, mode="reflect"), _norm(dims, ch))

    def forward(self, x: torch.Tensor, hooks=None) -> torch.Tensor:
        return x + _run(self.body, x, hooks)


# How the trunk's decoder doubles the resolution: CycleGAN's stride-2 transposed convolution,
# whose uneven kernel overlap paints a period-2 checkerboard (Odena et al. 2016), or
# nearest-neighbour resizing followed by a 3x3 convolution, which has no such overlap. The
# CycleGAN pretexts build their trunks with the same value, so weights still map one to one.
UPSAMPLINGS = ("transposed", "resize")


def _upsampling(dims: int, cin: int, cout: int, how: str) -> list[nn.Module]:
    if how == "transposed":
        return [Conv[Conv.CONVTRANS, dims](cin, cout, 3, stride=2, padding=1, output_padding=1)]
    return [nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(dims, cin, cout, 3, pad=1, mode="reflect")]


class ResnetTrunk(nn.Module):
    """CycleGAN's ResNet generator: 7x7 conv, two stride-2 downsamplings, residual blocks,
    two upsamplings (UPSAMPLINGS), 7x7 conv, tanh."""

    def __init__(self, spatial_dims: int, ngf: int, n_blocks: int, *, upsample: str,
                 in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample {upsample!r}: choose one of {', '.join(UPSAMPLINGS)}")
        d = spatial_dims
        self.encoder = nn.Sequential(
            _conv(d, in_channels, ngf, 7, pad=3, mode="reflect"), _norm(d, ngf), nn.ReLU(True),
            _conv(d, ngf, 2 * ngf, 3, stride=2, pad=1), _norm(d, 2 * ngf), nn.ReLU(True),
            _conv(d, 2 * ngf, 4 * ngf, 3, stride=2, pad=1), _norm(d, 4 * ngf), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResidualBlock(d, 4 * ngf) for _ in range(n_blocks)])
        self.decoder = nn.Sequential(
            *_upsampling(d, 4 * ngf, 2 * ngf, upsample), _norm(d, 2 * ngf), nn.ReLU(True),
            *_upsampling(d, 2 * ngf, ngf, upsample), _norm(d, ngf), nn.ReLU(True),
            _conv(d, ngf, out_channels, 7, pad=3, mode="reflect"), nn.Tanh())

    def norm_channels(self) -> list[int]:
        """The channel count of every instance norm, in the order `forward` meets them."""
        return [m.num_features for m in self.modules() if isinstance(m, _INSTANCE_NORMS)]

    def norm_strides(self) -> list[int]:
        """How many times smaller than the image each instance norm's maps are, in that order."""
        return [1, 2, 4] + [4] * 2 * len(self.residual) + [2, 1]

    def forward(self, x: torch.Tensor, hooks=None, bottleneck: torch.Tensor | None = None
                ) -> torch.Tensor:
        """`hooks`: one function per instance norm's output (see `_run`); `bottleneck`: a
        feature map added to the encoder's output, before the residual blocks."""
        x = _run(self.encoder, x, hooks)
        if bottleneck is not None:
            x = x + bottleneck
        return _run(self.decoder, _run(self.residual, x, hooks), hooks)


class NoiseStem(nn.Module):
    """Noise vector -> one-channel image in [-1, 1] at full resolution, which the trunk then
    renders just as a CycleGAN generator renders a T2 image into a T1 image."""

    UPSAMPLINGS = 3

    def __init__(self, spatial_dims: int, image_size: int, z_dim: int, channels: int):
        super().__init__()
        if image_size % 2 ** self.UPSAMPLINGS:
            raise ValueError(f"image size {image_size} must be a multiple of {2 ** self.UPSAMPLINGS}")
        d = spatial_dims
        self.base = image_size // 2 ** self.UPSAMPLINGS
        self.channels = channels
        self.fc = nn.Linear(z_dim, channels * self.base ** d)
        # Channels halve as resolution doubles: full-resolution convs dominate the cost in 3D.
        layers: list[nn.Module] = []
        ch = channels
        for _ in range(self.UPSAMPLINGS):
            nxt = max(ch // 2, 4)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       _conv(d, ch, nxt, 3, pad=1), _norm(d, nxt), nn.LeakyReLU(0.2, True)]
            ch = nxt
        layers += [_conv(d, ch, 1, 3, pad=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.spatial_dims = d

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], self.channels, *([self.base] * self.spatial_dims))
        return self.body(x)


def _zeroed(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Modulation(nn.Module):
    """z -> a (scale, offset) pair for each of the trunk's instance norms: a fresh two-layer
    mapping of z (StyleGAN's mapping network, shortened), then one affine layer for all norms,
    zero at the start so the trunk starts as exactly the function it was given."""

    def __init__(self, spatial_dims: int, z_dim: int, channels: list[int]):
        super().__init__()
        self.spatial_dims, self.channels = spatial_dims, channels
        self.mapping = nn.Sequential(nn.Linear(z_dim, z_dim), nn.LeakyReLU(0.2, True),
                                     nn.Linear(z_dim, z_dim), nn.LeakyReLU(0.2, True))
        self.affine = _zeroed(nn.Linear(z_dim, 2 * sum(channels)))

    def forward(self, z: torch.Tensor) -> list:
        out = self.affine(self.mapping(z)).view(len(z), -1, *[1] * self.spatial_dims)
        parts = out.split([c for c in self.channels for _ in (0, 1)], dim=1)
        return [lambda x, s=s, o=o: x * (1 + s) + o for s, o in zip(parts[0::2], parts[1::2])]


class BottleneckInput(nn.Module):
    """z -> a feature map at the trunk's bottleneck (4 ngf channels at a quarter of the image
    side), added to the encoder's output; zero at the start, as Modulation."""

    def __init__(self, spatial_dims: int, image_size: int, z_dim: int, channels: int):
        super().__init__()
        self.shape = (channels, *[image_size // 4] * spatial_dims)
        self.fc = _zeroed(nn.Linear(z_dim, channels * (image_size // 4) ** spatial_dims))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z).view(len(z), *self.shape)


class PixelNoise(nn.Module):
    """Per-pixel noise added to every instance norm's output, scaled per channel by fresh weights
    that start at zero (StyleGAN's noise inputs): a source of fine texture that the trunk's
    smooth maps of z lack. The noise is a fixed pseudo-random function of z, not a fresh draw,
    so that a sample stays a function of its z (evaluations, the pairing of strategies by seed
    and the mode-seeking term all rely on that): per resolution, z times a fixed Gaussian matrix
    gives each pixel a value of spread sqrt(z_dim); the sine of a multiple of it, different per
    norm, is close to independent between pixels and norms, with variance 1 after sqrt(2)."""

    def __init__(self, spatial_dims: int, image_size: int, z_dim: int, channels: list[int],
                 strides: list[int]):
        super().__init__()
        self.spatial_dims, self.strides = spatial_dims, strides
        self.sides = {s: image_size // s for s in strides}
        self.scales = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in channels])
        gen = torch.Generator().manual_seed(20170703)  # fixed: the same noise for every seed
        here = torch.empty(0).device  # meta while the compute accounting builds networks
        for stride, side in self.sides.items():
            field = torch.randn(z_dim, side ** spatial_dims, generator=gen)
            self.register_buffer(f"field{stride}", field.to(here), persistent=False)

    def forward(self, z: torch.Tensor) -> list:
        # in fp32 whatever the autocast: bf16 would round the field before the sine spreads it
        with torch.autocast("cuda" if z.is_cuda else "cpu", enabled=False):
            base = {s: z.float() @ getattr(self, f"field{s}") for s in self.sides}
            hooks, shape = [], (1, -1) + (1,) * self.spatial_dims
            for i, (scale, stride) in enumerate(zip(self.scales, self.strides)):
                noise = 2 ** 0.5 * torch.sin((i + 1) * base[stride] + i)
                noise = noise.view(len(z), 1, *[self.sides[stride]] * self.spatial_dims)
                hooks.append(lambda x, n=noise, s=scale.view(shape): x + s * n)
        return hooks


# How z reaches the trunk: through the stem's image alone ("stem", the CycleGAN's own input
# path), also through modulated instance norms ("adain"), also as a feature map at the
# bottleneck ("bottleneck"), or both ("adain+bottleneck"); "pixel" adds per-pixel noise after
# every norm. Measured in docs/stabilized-recipe.md.
NOISE_INPUTS = ("stem", "adain", "bottleneck", "adain+bottleneck", "pixel")


class NoiseToImageGenerator(nn.Module):
    def __init__(self, spatial_dims: int, image_size: int, z_dim: int, ngf: int, n_blocks: int,
                 stem_channels: int, *, noise_input: str, upsample: str):
        super().__init__()
        if noise_input not in NOISE_INPUTS:
            raise ValueError(f"noise_input {noise_input!r}: choose one of {', '.join(NOISE_INPUTS)}")
        self.z_dim, self.spatial_dims, self.noise_input = z_dim, spatial_dims, noise_input
        self.stem = NoiseStem(spatial_dims, image_size, z_dim, stem_channels)
        self.trunk = ResnetTrunk(spatial_dims, ngf, n_blocks, upsample=upsample)
        paths = noise_input.split("+")
        # Built on a copy of the random state: the stem, the trunk and D get the same weights
        # for a seed whatever noise_input is, so the setting changes nothing else.
        with torch.random.fork_rng(devices=[]):
            self.modulation = (Modulation(spatial_dims, z_dim, self.trunk.norm_channels())
                               if "adain" in paths else None)
            self.bottleneck = (BottleneckInput(spatial_dims, image_size, z_dim, 4 * ngf)
                               if "bottleneck" in paths else None)
            self.pixel_noise = (PixelNoise(spatial_dims, image_size, z_dim,
                                           self.trunk.norm_channels(), self.trunk.norm_strides())
                                if "pixel" in paths else None)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # each norm's output: modulated first, then its noise added
        per_norm = [m(z) for m in (self.modulation, self.pixel_noise) if m is not None]
        hooks = (iter([lambda x, fs=fs: _compose(fs, x) for fs in zip(*per_norm)]) if per_norm
                 else None)
        extra = self.bottleneck(z) if self.bottleneck is not None else None
        return self.trunk(self.stem(z), hooks, extra)


def _compose(functions, x: torch.Tensor) -> torch.Tensor:
    for f in functions:
        x = f(x)
    return x


def patchgan_receptive_field(n_layers: int) -> int:
    # n_layers stride-2 4x4 convs, then two stride-1 4x4 convs, walked back from one output.
    rf = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        rf = rf * stride + (4 - stride)
    return rf


def patchgan_depth(image_size: int) -> int:
    """The shallowest PatchGAN whose receptive field covers the whole image."""
    n = 1
    while patchgan_receptive_field(n) < image_size:
        n += 1
    return n


class MinibatchStd(nn.Module):
    """Appends one channel: the standard deviation of every feature across a group of samples,
    averaged (Karras et al. 2017). A D that sees it can tell a batch of near-copies from a
    diverse real batch, which no per-sample layer can."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = min(self.group, n)
        while n % g:  # the largest group size up to `group` that divides the batch
            g -= 1
        y = x.float().reshape(g, n // g, *x.shape[1:])  # samples m, m + n/g, ... form a group
        # Written out: torch's var over the leading dimension took 4 ms a call here (quick 2D),
        # about 9% of a training step.
        y = y - y.mean(0)
        std = (y.square().mean(0) + 1e-8).sqrt().flatten(1).mean(1)
        std = std.repeat(g).to(x.dtype).view(n, 1, *([1] * (x.dim() - 2)))
        return torch.cat([x, std.expand(n, 1, *x.shape[2:])], 1)


class PatchDiscriminator(nn.Module):
    """CycleGAN's PatchGAN (4x4 convs, LeakyReLU 0.2, instance norm): `model` holds every layer
    but the last, with the same names and shapes as the CycleGAN's own discriminators, so it is
    what strategies transfer; `head` (the last 4x4 conv, after a minibatch standard deviation
    channel when `mbstd_group` > 0) is never transferred."""

    def __init__(self, spatial_dims: int, image_size: int, ndf: int = 64, in_channels: int = 1,
                 mbstd_group: int = 0):
        super().__init__()
        d = spatial_dims
        n_layers = patchgan_depth(image_size)
        layers: list[nn.Module] = [_conv(d, in_channels, ndf, 4, stride=2, pad=1),
                                   nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [_conv(d, ndf * prev, ndf * mult, 4, stride=stride, pad=1),
                       _norm(d, ndf * mult), nn.LeakyReLU(0.2, True)]
        self.model = nn.Sequential(*layers)
        last = _conv(d, ndf * mult + (mbstd_group > 0), 1, 4, pad=1)
        self.head = nn.Sequential(MinibatchStd(mbstd_group), last) if mbstd_group else last
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.model(x))


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """CycleGAN's N(0, 0.02) initialisation of every conv and linear weight, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_networks(s, seed: int) -> tuple[nn.Module, nn.Module]:
    """The fixed G and D of settings `s` (a bench.profiles.Settings) with the harness
    initialisation, deterministic in the seed."""
    torch.manual_seed(seed)
    G = NoiseToImageGenerator(s.dims, s.image_size, s.z_dim, s.ngf, s.n_blocks, s.stem_channels,
                              noise_input=s.noise_input, upsample=s.upsample)
    # The fresh noise paths keep their own start: PyTorch's default mapping, zero affine layers.
    init_weights(G.stem), init_weights(G.trunk)
    D = init_weights(PatchDiscriminator(s.dims, s.image_size, s.ndf, mbstd_group=s.mbstd_group))
    return G, D
