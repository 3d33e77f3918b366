"""The ENAS micro cell space of pdas2019 §4.1: sizes, genotype export, stand-alone replay."""

import json
import subprocess
import sys

import pytest
import torch
from pyro import poutine

from bayesnas.methods import run
from bayesnas.models import get_space
from bayesnas.nn import OPS, CellNetwork, decode_genotype, encode_genotype, unused_nodes
from bayesnas.sites import arch_plate, architecture_to_tensors, discover_sites


def _space(**options):
    torch.manual_seed(0)
    return get_space("enas-cells").build((3, 8, 8), 10, **{"channels": 4, "normal_cells": 1, **options})


def _random_arch(specs, seed):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randint(0, spec.num_categories, spec.shape, generator=g).tolist()
            for name, spec in specs.items()}


def test_paper_sizes_d_40_and_180_theta_entries():
    space = get_space("enas-cells").build((3, 32, 32), 10)  # pdas2019's search: C = 16, N = 2, B = 5
    specs = discover_sites(space, torch.zeros(1, 3, 32, 32))
    assert sum(s.numel for s in specs.values()) == 40
    assert sum(torch.Size(s.theta_shape).numel() for s in specs.values()) == 180
    assert specs["cell.reduce.n3.inputs"].choices == ("c_{k-2}", "c_{k-1}", "n0", "n1", "n2")
    assert specs["cell.normal.n0.ops"].choices == OPS
    assert space.net.kinds == ["normal"] * 2 + ["reduce"] + ["normal"] * 2 + ["reduce"] + ["normal"] * 2
    assert not any(m.affine for m in space.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("train", [False, True])
def test_stand_alone_network_replays_the_search_network(seed, train):
    space = _space()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    specs = discover_sites(space, x[:1])
    with torch.no_grad(), arch_plate(3):  # BatchNorm statistics from a few sampled paths
        space(x)
    arch = _random_arch(specs, seed)
    alone = space.stand_alone(arch)
    space.train(train)
    alone.train(train)
    with arch_plate(1):
        searched = poutine.condition(space, data=architecture_to_tensors(arch, specs))(x)[0]
    torch.testing.assert_close(alone(x), searched, rtol=1e-5, atol=1e-6)
    # Only the chosen operations exist in the stand-alone network.
    assert sum(p.numel() for p in alone.parameters()) == space.num_weights_used(arch)
    assert sum(p.numel() for p in alone.parameters()) < sum(p.numel() for p in space.parameters())


def test_genotype_names_every_choice_and_round_trips():
    space = _space()
    specs = discover_sites(space, torch.zeros(1, 3, 8, 8))
    genotype = space.genotype(_random_arch(specs, 3))
    assert json.loads(json.dumps(genotype)) == genotype
    assert encode_genotype(decode_genotype(genotype, num_nodes=5)) == genotype
    for kind in ("normal", "reduce"):
        assert len(genotype[kind]) == 5
        for i, node in enumerate(genotype[kind]):
            assert set(node) == {"inputs", "ops"} and all(op in OPS for op in node["ops"])
            assert all(a in ("c_{k-2}", "c_{k-1}") or int(a[1:]) < i for a in node["inputs"])
    assert unused_nodes(decode_genotype(genotype)["normal"])  # the last node is never read


@pytest.mark.parametrize("genotype, message", [
    ({"normal": []}, "A genotype maps exactly ['normal', 'reduce']"),
    ({"normal": [{"inputs": ["n0", "c_{k-1}"], "ops": ["identity", "identity"]}],
      "reduce": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["identity", "identity"]}]},
     "Node 0 of the normal cell reads two of ['c_{k-2}', 'c_{k-1}'], but got inputs=['n0', 'c_{k-1}']"),
    ({"normal": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["conv_7x7", "identity"]}],
      "reduce": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["identity", "identity"]}]},
     "applies two of ['identity', 'sep_conv_3x3'"),
])
def test_bad_genotypes_state_the_rule_and_the_value(genotype, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("{", r"\{").replace("}", r"\}")):
        CellNetwork(genotype=genotype, num_nodes=1, channels=4, normal_cells=1)


def test_stand_alone_network_runs_from_the_json_alone_without_pyro(tmp_path):
    space = _space()
    specs = discover_sites(space, torch.zeros(1, 3, 8, 8))
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(space.genotype(_random_arch(specs, 5))))
    code = (
        "import json, sys, torch\n"
        "sys.modules['pyro'] = None  # any import of Pyro fails\n"
        "from bayesnas.nn import CellNetwork\n"
        f"net = CellNetwork(genotype=json.load(open({str(path)!r})), channels=4, normal_cells=1)\n"
        "out = net(torch.randn(2, 3, 8, 8))\n"
        "print(tuple(out.shape), sum(p.numel() for p in net.parameters()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("(2, 10)")


# 20-35 s: kept out of the default suite (10 min on 2 cores), run by `make test-slow`.
@pytest.mark.slow
def test_search_on_digits_keeps_every_theta_row_on_the_clipped_simplex(tmp_path):
    from bayesnas.methods.search import SearchConfig

    run(SearchConfig(space="enas-cells", dataset="digits", epochs=1, batch_size=64, seed=0,
                            stochastic_samples=2, space_options={"channels": 4, "normal_cells": 1}),
               out=tmp_path, progress=False)
    summary = json.loads((tmp_path / "posterior.json").read_text())
    assert len(summary) == 20
    moved = 0
    for site in summary.values():
        theta = torch.tensor(site["theta"], dtype=torch.float64)
        k = theta.shape[-1]
        torch.testing.assert_close(theta.sum(-1), torch.ones(theta.shape[:-1], dtype=torch.float64))
        assert bool((theta >= 1 / (40 * (k - 1)) - 1e-9).all())  # θmin = 1/(D(K − 1)), pdas2019
        moved += int(not torch.allclose(theta, torch.full_like(theta, 1 / k)))
    assert moved == 20
    arch = json.loads((tmp_path / "architecture.json").read_text())
    assert set(arch) == set(summary)
    genotype = json.loads((tmp_path / "genotype.json").read_text())
    net = CellNetwork(genotype=genotype, in_channels=1, channels=4, normal_cells=1)  # the JSON alone
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
