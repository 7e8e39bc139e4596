"""The candidates measured for the leading metric (docs/evaluation.md, "Choosing the leading
metric"): each a registered metric, so that one validation run scores them all on the same draws.

    bench validate-metrics --plugin examples/leading_candidates.py --no-inception --draws 5 \
        --metrics fid,fid_noise05,fid_noise15,fid_noise30,fid_noise15_blur,fid_blur,fid_modes \
        --task phantom-2d

`fid` is the leading domain FID (rotation-only views); the candidates' encoders re-draw the
noise of each view (`noiseNN`: a standard deviation up to 0.NN) or blur it (`blur`: up to 1
pixel at 64^2), the architecture and training otherwise the same; and
`fid_modes` reads the mode classifier's penultimate features (trained on the phantom's known
factors, so it cannot serve a source without labels: measured for comparison only).
"""

import torch

from bench.device import exact_features
from bench.metrics.domain import Views
from bench.metrics.fid import frechet_distance
from bench.metrics.registry import DISTANCE, LOWER, Metric, Reference, Sample, domain_fid, register
from bench.metrics.scores import MetricError

CANDIDATES = (Views("noise05", noise=0.05), Views("noise15", noise=0.15),
              Views("noise30", noise=0.3), Views("noise15_blur", noise=0.15, blur=1.0),
              Views("blur", blur=1.0))

for views in CANDIDATES:
    register(Metric(f"fid_{views.name}", f"domain FID, {views.name} views", domain_fid(views),
                    LOWER, None, 2, **DISTANCE, views=views))


@torch.no_grad()
def _penultimate(classifier, images: torch.Tensor) -> torch.Tensor:
    """The mode classifier's pooled features (MONAI ResNet: everything but its last layer)."""
    net, out = classifier.net, []
    with exact_features(classifier.device):
        for chunk in images.split(64):
            x = net.act(net.bn1(net.conv1(chunk.to(classifier.device, torch.float32))))
            if not net.no_max_pool:
                x = net.maxpool(x)
            for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
                x = layer(x)
            out.append(net.avgpool(x).flatten(1).double().cpu())
    return torch.cat(out)


def _modes_fid(ref: Reference, x: Sample) -> float:
    if ref.modes is None:
        raise MetricError("no mode classifier: the task's images carry no mode labels")
    classifier = ref.modes.classifier
    real = ref.cached("mode_features", lambda: _penultimate(classifier, ref.images))
    return frechet_distance(x.cached("mode_features", lambda: _penultimate(classifier, x.images)),
                            real)


register(Metric("fid_modes", "FID in the mode classifier's features", _modes_fid, LOWER, None,
                2, **DISTANCE))
