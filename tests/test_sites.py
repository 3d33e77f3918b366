import json

import pytest
import torch
from pyro import poutine

from bayesnas import sites
from bayesnas.runs import load_architecture, save_architecture
from bayesnas.sites import (
    arch_plate,
    architecture_to_tensors,
    discover_sites,
    fixed_architecture,
)
from tests.toy_models import MixedToy


def test_discover_sites_describes_each_family():
    specs = discover_sites(MixedToy())
    assert specs["block.skip"].family == "bernoulli" and specs["block.skip"].shape == (2,)
    op = specs["cell.n0.op"]
    assert (op.family, op.shape, op.num_categories, op.choices) == (
        "categorical", (), 3, ("conv", "pool", "skip"),
    )


def test_site_values_have_the_leading_architecture_dimension():
    with poutine.trace() as tr, arch_plate(5):
        MixedToy()()
    assert tr.trace.nodes["block.skip"]["value"].shape == (5, 2)
    assert tr.trace.nodes["cell.n0.op"]["value"].shape == (5,)


def test_architecture_round_trips_through_json_and_replays(tmp_path):
    model = MixedToy()
    specs = discover_sites(model)
    arch = {"block.skip": [1, 0], "cell.n0.op": 2}
    save_architecture(arch, tmp_path / "a.json")
    again = load_architecture(tmp_path / "a.json")
    assert again == arch and json.loads((tmp_path / "a.json").read_text()) == arch
    with arch_plate(1):
        loss = fixed_architecture(model, again, specs)()
    assert loss.tolist() == [model.table[1, 0, 2].item()]


def test_bad_architectures_state_the_rule_and_the_value():
    specs = discover_sites(MixedToy())
    with pytest.raises(KeyError, match=r"Unknown arch sites \['nope'\]"):
        architecture_to_tensors({"block.skip": [1, 0], "cell.n0.op": 0, "nope": 1}, specs)
    with pytest.raises(KeyError, match="no value for the arch sites"):
        architecture_to_tensors({"block.skip": [1, 0]}, specs)
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3,\)"):
        architecture_to_tensors({"block.skip": [1, 0, 1], "cell.n0.op": 0}, specs)
    with pytest.raises(ValueError, match=r"takes values in \[0, 3\), but got 3"):
        architecture_to_tensors({"block.skip": [1, 0], "cell.n0.op": 3}, specs)
    with pytest.raises(ValueError, match="0/1 values, but got"):
        architecture_to_tensors({"block.skip": [2, 0], "cell.n0.op": 0}, specs)


def test_site_declaration_errors():
    with pytest.raises(ValueError, match="at least 2 choices, but got 1"):
        with arch_plate(1):
            sites.categorical("x", ["only"])
    with pytest.raises(ValueError, match=r"probs=1.5"):
        sites.bernoulli("x", 3, probs=1.5)
    with pytest.raises(ValueError, match=r"positive sizes, but got shape=\(0,\)"):
        sites.bernoulli("x", 0)


def test_helpers_work_inside_a_pyro_module():
    from pyro.nn import PyroModule

    class Net(PyroModule):
        def forward(self):
            return sites.bernoulli("net.layer3.on")

    assert discover_sites(Net())["net.layer3.on"].shape == ()
    with arch_plate(4):
        assert Net()().shape == (4,)


def test_values_are_tensors_of_the_right_dtype():
    v = architecture_to_tensors({"block.skip": [1, 0], "cell.n0.op": 1}, discover_sites(MixedToy()))
    assert v["cell.n0.op"].dtype == torch.long and v["block.skip"].dtype == torch.float32
