"""GPU paths; skipped where no CUDA device is present (CI has none)."""

import json

import pytest
import torch

from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_search_runs_on_the_gpu_and_samples_the_same_architectures_as_on_cpu(tmp_path):
    cfg = dict(space="layer-skip", dataset="digits", epochs=1, seed=0, batch_size=16,
               stochastic_samples=8, space_options={"depth": 6, "width": 32})
    gpu = run(SearchConfig(device="cuda", **cfg), out=tmp_path / "gpu", progress=False)
    run(SearchConfig(device="cpu", **cfg), out=tmp_path / "cpu", progress=False)
    assert 0.0 <= gpu["test_error_deterministic"] <= 1.0
    theta = {d: json.loads((tmp_path / d / "posterior.json").read_text())["layers"]["theta"]
             for d in ("gpu", "cpu")}
    d = len(theta["gpu"])
    assert all(1 / d - 1e-6 <= t <= 1 - 1 / d + 1e-6 for t in theta["gpu"])
    # Architectures come from a CPU generator, so both devices draw the same samples; θ then
    # differs only where float rounding flips the ranking of two nearly equal losses.
    agree = sum(abs(a - b) < 1e-5 for a, b in zip(theta["gpu"], theta["cpu"], strict=True))
    assert agree >= d // 2


SMALL_SPACES = {
    "layer-skip": {"depth": 6, "width": 32},
    "activation-select": {"depth": 2, "width": 32},
    "unit-select": {"depth": 2, "width": 32},
    "stochastic-net": {"depth": 4, "width": 32},
    "densenet-connections": {"growth": 4, "layers_per_block": 3, "blocks": 2, "stem_channels": 8},
    "enas-cells": {"channels": 4, "normal_cells": 1},
    "input-groups": {"group_size": 8, "width": 8},
    "nb201-cell": {"channels": 4},
}


@pytest.mark.parametrize("space", sorted(SMALL_SPACES))
@pytest.mark.parametrize("penalty", [0.0, 2.0**-6])
def test_every_space_searches_on_the_gpu(space, penalty, tmp_path):
    """Each registered space runs a search epoch on CUDA (penalty too) and keeps θ in its domain."""
    from bayesnas.models import available_spaces

    assert set(SMALL_SPACES) == set(available_spaces())  # a new space must be added here
    if penalty and space in ("activation-select", "enas-cells", "nb201-cell"):
        pytest.skip("these choices carry no complexity cost")
    result = run(
        SearchConfig(space=space, dataset="digits", epochs=1, seed=0, batch_size=16, device="cuda",
                     penalty=penalty, stochastic_samples=4, space_options=SMALL_SPACES[space]),
        out=tmp_path / space, progress=False,
    )
    assert 0.0 <= result["test_error_deterministic"] <= 1.0
    assert 0.0 <= result["test_error_stochastic"] <= 1.0
    summary = json.loads((tmp_path / space / "posterior.json").read_text())
    for site in summary.values():
        theta = torch.tensor(site["theta"], dtype=torch.float64).flatten()
        assert theta.numel() > 0 and bool(((theta > 0) & (theta < 1)).all())


def test_variational_search_of_vinnas_cells_runs_on_the_gpu():
    """vinnas2020: Bayesian weights with the local reparameterization, α by SVI, on CUDA; the
    exported genotype's stand-alone network runs there too."""
    from bayesnas.guides import NormalGuide
    from bayesnas.infer.variational import VariationalArchitectureSearch
    from bayesnas.models import VinnasSearchSpace
    from bayesnas.sites import discover_sites

    torch.manual_seed(0)
    space = VinnasSearchSpace(layout="M", channels=4, bayesian=True).cuda()
    x = torch.randn(16, 1, 12, 12, device="cuda")
    y = torch.randint(0, 10, (16,), device="cuda")
    arch_guide = NormalGuide(discover_sites(space, x, weights=space.point_weights())).cuda()
    search = VariationalArchitectureSearch(space.model, weight_guide=space.weight_guide().cuda(),
                                           arch_guide=arch_guide, epochs=2, warmup_epochs=1)
    before = [p.detach().clone() for p in arch_guide.arch_parameters()]
    for epoch in range(2):
        metrics = search.step((x[:8], y[:8]), (x[8:], y[8:]), epoch=epoch)
        assert torch.isfinite(torch.tensor(metrics["loss"]))
    assert all(p.is_cuda for p in arch_guide.arch_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, arch_guide.arch_parameters(), strict=True))
    net = space.stand_alone(space.genotype(arch_guide)).cuda()
    assert net(x).shape == (16, 10)
