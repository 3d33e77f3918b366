"""The inpainting CAE space of pdas2019 §4.2: sizes, θ's domain, replay, the driver and its script."""

import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pyro import poutine

from bayesnas.guides import auto_guide
from bayesnas.handlers import seeded_arch
from bayesnas.infer import AlternatingArchitectureSearch, RankingNaturalGradientLoss
from bayesnas.infer.losses import guide_log_prob, per_architecture_loss
from bayesnas.methods import run
from bayesnas.methods.inpainting import InpaintingConfig, InpaintingData, load_images
from bayesnas.models import InpaintingSearchSpace
from bayesnas.nn.cae import (
    LAYER_TYPES,
    CAESearchNetwork,
    Layer,
    SymmetricCAE,
    active_chain,
    decode_genotype,
    encode_genotype,
    search_variables,
)
from bayesnas.sites import arch_plate, architecture_to_tensors, discover_sites

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (tests/conftest.py)


def _space(in_channels=1, **options):
    torch.manual_seed(0)
    return InpaintingSearchSpace(in_channels, **{"num_hidden": 6, "level_back": 3, "channels": (2, 3, 4),
                                                 **options})


def _random_arch(specs, seed):
    g = torch.Generator().manual_seed(seed)
    return {name: int(torch.randint(0, spec.num_categories, (), generator=g)) for name, spec in specs.items()}


# -- the space ---------------------------------------------------------------------------------
def test_paper_sizes_d_60_and_274_theta_entries():
    paper = search_variables(20, 5, (64, 128, 256))  # N_c = 20, b = 5 (pdas2019 §4.2)
    assert len(paper) == 60
    assert sum(len(labels) for labels in paper.values()) == 274
    # The same counts from the Pyro model's declared sites (small channels: the counts do not
    # depend on the channel sizes, only on their number).
    space = InpaintingSearchSpace(3, channels=(2, 3, 4))
    assert space.options == {"num_hidden": 20, "level_back": 5, "channels": (2, 3, 4)}
    specs = discover_sites(space, torch.zeros(1, 3, 8, 8))
    assert sum(s.numel for s in specs.values()) == 60
    assert sum(torch.Size(s.theta_shape).numel() for s in specs.values()) == 274
    assert specs["cae.layer3.type"].choices == LAYER_TYPES
    assert specs["cae.layer3.channels"].choices == ("2", "3", "4")
    assert specs["cae.layer2.input"].choices == ("input", "layer1")
    assert specs["cae.layer9.input"].choices == ("layer4", "layer5", "layer6", "layer7", "layer8")
    assert specs["cae.output.input"].choices == tuple(f"layer{j}" for j in range(16, 21))
    assert "cae.layer1.input" not in specs  # layer 1 always reads the image
    assert InpaintingSearchSpace().options["channels"] == (64, 128, 256)
    assert LAYER_TYPES == ("conv1x1+skip", "conv1x1+down", "conv3x3+skip", "conv3x3+down",
                           "conv5x5+skip", "conv5x5+down")


# 20-35 s: kept out of the default suite (10 min on 2 cores), run by `make test-slow`.
@pytest.mark.slow
def test_theta_stays_on_the_clipped_simplex_under_adversarial_utilities():
    space = InpaintingSearchSpace(3, channels=(2, 3, 4))
    specs = discover_sites(space, torch.zeros(1, 3, 8, 8))
    guide = auto_guide(sites=specs)
    (opt,) = guide.make_optimizers(adaptive=True)
    d = len(specs)
    g = torch.Generator().manual_seed(0)
    fixed = {name: torch.zeros(2, dtype=torch.long) for name in specs}  # always "category 0 wins"
    for step in range(300):
        opt.zero_grad()
        if step < 150:
            with arch_plate(2):
                trace = poutine.trace(poutine.condition(guide, data=fixed)).get_trace()
            u = torch.tensor([1.0, 1.0])
        else:  # random samples ranked at random, with huge utilities
            with seeded_arch(generator=g), arch_plate(2):
                trace = poutine.trace(guide).get_trace()
            u = (torch.randint(0, 2, (2,), generator=g) * 2 - 1).float() * 1e3
        (-(u * guide_log_prob(trace)).mean()).backward()
        opt.step()
        for name, spec in specs.items():
            theta = guide.theta(name).detach().double()
            theta_min = 1 / (d * (spec.num_categories - 1))  # pdas2019 app. B
            assert abs(float(theta.sum()) - 1) < 1e-6, name
            assert float(theta.min()) >= theta_min - 1e-7, (name, theta.tolist())
        if step == 149:  # pushed into the corner of the clipped simplex
            theta = guide.theta("cae.layer4.type").detach()
            torch.testing.assert_close(theta[1:], torch.full((5,), 1 / (d * 5)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("side", [15, 16])
def test_stand_alone_network_replays_the_search_network(side):
    space = _space()
    x = torch.rand(3, 1, side, side, generator=torch.Generator().manual_seed(side))
    specs = discover_sites(space, x[:1])
    downsampling, inactive = 0, 0
    for seed in range(8):
        arch = _random_arch(specs, seed)
        alone = space.stand_alone(arch)
        with torch.no_grad(), arch_plate(1):
            searched = poutine.condition(space, data=architecture_to_tensors(arch, specs))(x)[0]
            replayed = alone(x)
        assert replayed.shape == x.shape
        torch.testing.assert_close(replayed, searched, rtol=1e-6, atol=1e-7)
        downsampling += not all(alone.skips)
        inactive += len(alone.chain) < 6
        assert sum(p.numel() for p in alone.parameters()) == space.num_weights_used(arch)
        assert sum(p.numel() for p in alone.parameters()) < sum(p.numel() for p in space.parameters())
    assert downsampling and inactive  # the draws covered both


def test_only_the_active_chain_is_computed_and_the_decoder_mirrors_it():
    layers = [Layer(2, 4, 0), Layer(3, 8, 1), Layer(0, 2, 1), Layer(5, 6, 2), Layer(1, 4, 1)]
    assert active_chain(layers, 4) == [1, 2, 4]  # layers 3 and 5 are inactive
    genotype = encode_genotype(layers, 4)
    net = SymmetricCAE(genotype, in_channels=3)
    assert [tuple(m.weight.shape) for m in net.encoder] == [(4, 3, 3, 3), (8, 4, 3, 3), (6, 8, 5, 5)]
    # Decoder j: from c_{j+1} (c_{k+1} = c_k) back to c_j, a ConvTranspose2d weight (in, out, k, k).
    assert [tuple(m.weight.shape) for m in net.decoder] == [(8, 4, 3, 3), (6, 8, 3, 3), (6, 6, 5, 5)]
    assert [m.stride for m in net.encoder] == [(1, 1), (2, 2), (2, 2)]
    assert tuple(net.output.weight.shape) == (4, 3, 3, 3)
    search = CAESearchNetwork(in_channels=3, num_hidden=5, channels=(2, 4, 6, 8))
    calls = []
    hooks = [search.encoders[i][t].register_hook(lambda g, i=i: calls.append(i))
             for i in range(5) for t in range(6)]
    search(torch.rand(2, 3, 9, 9), layers, 4).sum().backward()
    assert sorted(calls) == [0, 1, 3]  # only the chain's encoder weights get gradients
    for h in hooks:
        h.remove()
    assert all(search.encoders[2][t].grad is None for t in range(6))


def test_genotype_names_every_choice_and_round_trips():
    space = _space()
    specs = discover_sites(space, torch.zeros(1, 1, 8, 8))
    genotype = space.genotype(_random_arch(specs, 3))
    assert json.loads(json.dumps(genotype)) == genotype
    decoded = decode_genotype(genotype, num_hidden=6, level_back=3, channels=(2, 3, 4))
    assert encode_genotype(*decoded) == genotype
    assert len(genotype["layers"]) == 6 and genotype["layers"][0]["input"] == "input"
    assert genotype["output"]["input"] in ("layer4", "layer5", "layer6")


GOOD = {"layers": [{"type": "conv3x3+skip", "channels": 4, "input": "input"},
                   {"type": "conv1x1+down", "channels": 2, "input": "layer1"}],
        "output": {"input": "layer2"}}


def _with(path, value):
    g = json.loads(json.dumps(GOOD))
    *keys, last = path
    target = g
    for k in keys:
        target = target[k]
    target[last] = value
    return g


@pytest.mark.parametrize("genotype, options, message", [
    ({"layers": []}, {}, "A CAE genotype maps exactly ['layers', 'output'], but got ['layers']"),
    (_with(("layers", 0, "type"), "conv7x7+skip"), {}, "Layer 1 has a type among ['conv1x1+skip'"),
    (_with(("layers", 1, "channels"), 0), {},
     "Layer 2 needs a positive integer channel count, but got channels=0"),
    (_with(("layers", 1, "input"), "layer2"), {},
     "Layer 2 reads an earlier layer, ['input', 'layer1'], but got input='layer2'"),
    (_with(("layers", 1, "input"), "input"), {"level_back": 1},
     "Layer 2 reads one of the last b=1 layers, ['layer1'], but got input='input'"),
    (_with(("output", "input"), "input"), {},
     "The output layer reads a hidden layer, ['layer1', 'layer2'], but got"),
    (GOOD, {"num_hidden": 3}, "The space has num_hidden=3 hidden layers, but the genotype has 2"),
    (GOOD, {"channels": (2, 8)}, "Layer 1 has channels among [2, 8], but got channels=4"),
])
def test_bad_genotypes_state_the_rule_and_the_value(genotype, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        decode_genotype(genotype, **options)
    if not options:
        with pytest.raises(ValueError, match=re.escape(message)):
            SymmetricCAE(genotype, in_channels=1)


def test_stand_alone_network_runs_from_the_json_alone_without_pyro(tmp_path):
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(GOOD))
    code = (
        "import json, sys, torch\n"
        "sys.modules['pyro'] = None  # any import of Pyro fails\n"
        "from bayesnas.nn.cae import SymmetricCAE\n"
        f"net = SymmetricCAE(json.load(open({str(path)!r})), in_channels=3)\n"
        "print(tuple(net(torch.rand(2, 3, 10, 10)).shape))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 3, 10, 10)"


def test_the_likelihood_makes_the_per_architecture_loss_the_mse_plus_a_constant():
    space = _space()
    x, y = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    with seeded_arch(generator=torch.Generator().manual_seed(0)), arch_plate(3):
        trace = poutine.trace(space).get_trace(x, y)
    pred = trace.nodes["_RETURN"]["value"]
    assert pred.shape == (3, 4, 1, 8, 8)
    mse = (pred - y).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(per_architecture_loss(trace), mse + 0.5 * math.log(math.pi))


def test_the_theta_step_never_changes_the_weights():
    space = _space()
    specs = discover_sites(space, torch.zeros(1, 1, 8, 8))
    guide = auto_guide(sites=specs)
    weights = torch.optim.SGD(space.parameters(), lr=0.025, momentum=0.9)
    search = AlternatingArchitectureSearch(space, guide, RankingNaturalGradientLoss(num_samples=2),
                                           weight_optimizer=weights,
                                           arch_optimizers=guide.make_optimizers(adaptive=True),
                                           generator=torch.Generator().manual_seed(1))
    snapshot = {}
    original = weights.step

    def step_and_snapshot(*args, **kwargs):
        out = original(*args, **kwargs)
        snapshot.update({k: v.clone() for k, v in space.state_dict().items()})
        return out

    weights.step = step_and_snapshot
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batches = [(torch.rand(4, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g))
                   for _ in range(2)]
        theta_before = [t.detach().clone() for t in guide.parameters()]
        search.step(*batches)
        for k, v in space.state_dict().items():
            assert torch.equal(v, snapshot[k]), k  # bitwise: the θ step touched no weight
        after = list(guide.parameters())
        moved = [not torch.equal(a, b.detach()) for a, b in zip(theta_before, after, strict=True)]
        assert any(moved)


# -- the driver --------------------------------------------------------------------------------
def _tiny(**changes):
    base = dict(dataset="digits", side=8, num_hidden=4, level_back=2, channels=(4, 8), search_iterations=6,
                retrain_iterations=4, random_architectures=1, test_images=30, checkpoint_every=2)
    return InpaintingConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def digits():
    return load_images("digits")


def test_images_are_scaled_back_to_the_unit_range(digits):
    assert digits.train.shape[1:] == (1, 8, 8) and len(digits.train) + len(digits.test) == 1797
    for x in (digits.train, digits.test):
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        assert abs(float(x.max()) - 1) < 1e-4 and abs(float(x.min())) < 1e-4  # values k/16 of 0..16
        torch.testing.assert_close(x * 16, (x * 16).round(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("changes, message", [
    ({"mask": "square"}, "`mask` must be one of ('center', 'pixel', 'half'), but got mask='square'"),
    ({"num_samples": 1}, "`num_samples` must be an integer >= 2, but got num_samples=1"),
    ({"dataset": "celeba"}, "Unknown dataset 'celeba'"),
    ({"test_images": 0}, "`test_images` must be None or an integer >= 1, but got test_images=0"),
    ({"channels": (4, 4)}, "`channels` must be distinct, but got channels=(4, 4)"),
    ({"lr": 0.0}, "`lr` must be positive, but got lr=0.0"),
])
def test_config_errors_state_the_rule_and_the_value(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _tiny(**changes).validate()


def _comparable(results):
    out = json.loads(json.dumps(results))
    out.pop("search_seconds")
    for r in [out["searched"], *out["random"]]:
        r.pop("seconds")
    return out


def _rows(path):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in path.read_text().splitlines()]


@pytest.mark.parametrize("kill_at", [2, 5], ids=["in-search", "in-retrain"])
def test_resume_after_interruption_reproduces_the_uninterrupted_run(tmp_path, monkeypatch, digits, kill_at):
    import bayesnas.runs.loop as inpainting  # the one loop every phase goes through

    full = run(_tiny(), out=tmp_path / "full", progress=False, data=digits)
    original = inpainting.save_checkpoint
    calls = []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:  # killed after the metrics row, before its checkpoint
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(inpainting, "save_checkpoint", dies)
    with pytest.raises(KeyboardInterrupt):
        run(_tiny(), out=tmp_path / "cut", progress=False, data=digits)
    monkeypatch.setattr(inpainting, "save_checkpoint", original)
    with pytest.raises(FileExistsError, match="resume=True"):
        run(_tiny(), out=tmp_path / "cut", progress=False, data=digits)
    resumed = run(out=tmp_path / "cut", resume=True, progress=False, data=digits)

    assert _comparable(resumed) == _comparable(full)
    for name in ("posterior.json", "genotype.json", "architecture.json"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "full" / name).read_text()
    for log in ("search/metrics.jsonl", "retrain-searched/metrics.jsonl"):
        assert _rows(tmp_path / "cut" / log) == _rows(tmp_path / "full" / log)
    assert len(_rows(tmp_path / "full" / "search" / "metrics.jsonl")) == 3
    # The posterior after every search epoch (and at the start), as bayesnas.methods.search logs it.
    history = (tmp_path / "full" / "posterior_history.jsonl").read_text()
    assert (tmp_path / "cut" / "posterior_history.jsonl").read_text() == history
    rows = [json.loads(line) for line in history.splitlines()]
    assert [(r["epoch"], r["iteration"]) for r in rows] == [(0, 0), (1, 2), (2, 4), (3, 6)]
    final = json.loads((tmp_path / "full" / "posterior.json").read_text())
    assert sorted(rows[-1]["posterior"]) == sorted(final)
    for name, site in final.items():
        assert rows[-1]["posterior"][name]["theta"] == pytest.approx(site["theta"]), name
    searched = json.loads((tmp_path / "full" / "genotype.json").read_text())
    assert full["searched"]["genotype"] == searched  # re-trained from the exported JSON
    assert all(math.isfinite(r[k]) for r in [full["searched"], *full["random"]] for k in ("psnr", "ssim"))


def test_one_seed_repeats_exactly_and_another_differs(tmp_path, digits):
    a = run(_tiny(search_iterations=2, retrain_iterations=2), out=tmp_path / "a", progress=False,
                       data=digits)
    b = run(_tiny(search_iterations=2, retrain_iterations=2), out=tmp_path / "b", progress=False,
                       data=digits)
    c = run(_tiny(search_iterations=2, retrain_iterations=2, seed=1), out=tmp_path / "c",
                       progress=False, data=digits)
    assert _comparable(a) == _comparable(b)
    assert _comparable(a) != _comparable(c)


def test_a_run_with_given_images_uses_them(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = InpaintingData(torch.rand(40, 3, 6, 6, generator=g), torch.rand(10, 3, 6, 6, generator=g),
                          "noise")
    config = _tiny(search_iterations=2, retrain_iterations=2, random_architectures=0, mask="half")
    out = run(config, out=tmp_path, progress=False, data=data)
    assert out["test_images"] == 10 and out["train_images"] == 40 and out["random"] == []
    # Two search steps leave the posterior where it started; a regression has no chance level.
    assert "posterior_unmoved" in out["diagnostics"]["fired"]
    assert "decided_at_chance" not in out["diagnostics"]["checks"]
    net = SymmetricCAE(json.loads((tmp_path / "genotype.json").read_text()), in_channels=3)
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 3, 8, 8)


# -- the experiment script ---------------------------------------------------------------------
def test_the_smoke_run_writes_the_results_page_and_json(tmp_path):
    path = ROOT / "experiments" / "pdas_inpainting.py"
    spec = importlib.util.spec_from_file_location("pdas_inpainting", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    start = time.perf_counter()
    argv = ["--smoke", "--seeds", "2", "--out", str(tmp_path / "runs"), "--no-progress"]
    assert module.main(argv) == 0
    assert time.perf_counter() - start < 45
    text = (tmp_path / "runs" / "results" / "results.md").read_text()
    assert "python experiments/pdas_inpainting.py --smoke --seeds 2" in text
    assert "seeds 0..1" in text and "Data: `digits`" in text and "Table 2 of pdas2019" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "PSNR" not in line]
    ours = [r for r in rows if "PDAS (searched)" in r or "| random |" in r]
    assert len(ours) == 6  # 3 masks × {searched, random}
    for row in ours:
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", row)]
        assert numbers and all(math.isfinite(v) for v in numbers)
    for mask in ("center", "pixel", "half"):
        for seed in (0, 1):
            results = json.loads((tmp_path / "runs" / mask / f"seed{seed}" / "results.json").read_text())
            for r in [results["searched"], *results["random"]]:
                assert math.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1
    assert "## The paper's findings, checked on this run" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_search_and_retraining_run_on_cuda(tmp_path, digits):
    out = run(_tiny(search_iterations=2, retrain_iterations=2, device="cuda"), out=tmp_path,
                         progress=False, data=digits)
    assert all(math.isfinite(r[k]) for r in [out["searched"], *out["random"]] for k in ("psnr", "ssim"))
    state = torch.load(tmp_path / "search" / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 2
    space = InpaintingSearchSpace(1, num_hidden=4, level_back=2, channels=(4, 8)).cuda()
    specs = discover_sites(space, torch.zeros(1, 1, 8, 8, device="cuda"))
    arch = _random_arch(specs, 0)
    x = torch.rand(2, 1, 8, 8, device="cuda")
    with torch.no_grad(), arch_plate(1):
        searched = poutine.condition(space, data=architecture_to_tensors(arch, specs, device="cuda"))(x)[0]
        torch.testing.assert_close(space.stand_alone(arch)(x), searched)
