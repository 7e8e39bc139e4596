import torch

from bench.augment import cutout
from bench.metrics.defects import checkerboard_energy, dark_boxes


def _head(dims: int, size: int = 32) -> torch.Tensor:
    """An ellipse (ellipsoid) of tissue at 0.3 on a background of -1, with mild texture."""
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, size)] * dims, indexing="ij"))
    radii = torch.tensor([0.8, 0.65, 0.7][:dims]).view(-1, *[1] * dims)
    inside = ((grid / radii) ** 2).sum(0) <= 1
    texture = 0.05 * torch.sin(7 * grid[0]) * torch.cos(5 * grid[1])
    return torch.where(inside, 0.3 + texture, torch.tensor(-1.0)).view(1, 1, *[size] * dims)


def test_a_box_inside_the_brain_or_cut_into_its_outline_is_found_and_a_round_hole_is_not():
    head = _head(2)
    box, notch, hole = head.clone(), head.clone(), head.clone()
    box[..., 10:20, 12:22] = -1
    notch[..., 0:16, 10:22] = -1  # from the top edge deep into the brain
    grid = torch.stack(torch.meshgrid(*[torch.arange(32.0)] * 2, indexing="ij"))
    hole[0, 0][((grid - 16) ** 2).sum(0) <= 25] = -1
    found = dark_boxes(torch.cat([head, box, notch, hole]))
    assert found.tolist() == [False, True, True, False]


def test_a_cube_inside_a_volume_is_found():
    head = _head(3)
    cube = head.clone()
    cube[..., 10:20, 10:20, 10:20] = -1
    assert dark_boxes(torch.cat([head, cube])).tolist() == [False, True]


def test_cutout_makes_boxes_the_measure_finds():
    heads = _head(2).repeat(32, 1, 1, 1)
    erased = cutout(heads, torch.Generator().manual_seed(0))
    assert not dark_boxes(heads).any()
    assert dark_boxes(erased).float().mean() > 0.3


def test_checkerboard_energy_sees_a_period_two_pattern():
    head = _head(3, 16)
    index = torch.arange(16)
    pattern = (index.view(-1, 1, 1) + index.view(1, -1, 1) + index.view(1, 1, -1)) % 2
    striped = torch.where(head > -1, head + 0.1 * (2 * pattern - 1), head)
    plain, checked = checkerboard_energy(torch.cat([head, striped])).tolist()
    assert checked > 10 * plain
