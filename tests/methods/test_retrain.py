"""Re-training an exported cell architecture (pdas2019 §4.1): drop-path, auxiliary head,
the RANDOM baseline's uniform draws, the resumable re-training run and its command line."""

import collections
import json

import pytest
import torch

from bayesnas.cli import main
from bayesnas.methods import run
from bayesnas.methods.retrain import RetrainConfig, RetrainRun
from bayesnas.nn.cell_network import CellNetwork, decode_genotype, drop_path, random_genotype
from bayesnas.nn.cell_ops import OPS


def _genotype(seed=0):
    return random_genotype(generator=torch.Generator().manual_seed(seed))


def test_random_genotypes_are_valid_and_uniform_over_each_choice():
    gen = torch.Generator().manual_seed(0)
    draws = [random_genotype(generator=gen) for _ in range(3000)]
    for g in draws[:50]:
        decode_genotype(g, num_nodes=5)
    # Node 4 reads two of 6 states; every input and operation slot is uniform and independent.
    inputs = collections.Counter(x for g in draws for x in g["normal"][4]["inputs"])
    ops = collections.Counter(o for g in draws for o in g["reduce"][2]["ops"])
    assert set(inputs) == {"c_{k-2}", "c_{k-1}", "n0", "n1", "n2", "n3"} and set(ops) == set(OPS)
    for counts, k in ((inputs, 6), (ops, 5)):
        for c in counts.values():  # 6000 draws: 4 binomial standard deviations
            p = 1 / k
            assert abs(c / 6000 - p) < 4 * (p * (1 - p) / 6000) ** 0.5
    assert random_genotype(generator=torch.Generator().manual_seed(3)) == _genotype(3)


def test_drop_path_keeps_the_expectation_and_drops_whole_examples():
    torch.manual_seed(0)
    x = torch.ones(20_000, 2, 3, 3)
    y = drop_path(x, 0.3)
    per_example = y.flatten(1)
    # Each example is either all zero or all 1 / 0.7.
    assert torch.all((per_example == 0).all(1) | torch.isclose(per_example, torch.tensor(1 / 0.7)).all(1))
    assert abs(float((per_example[:, 0] == 0).float().mean()) - 0.3) < 0.02
    assert abs(float(y.mean()) - 1.0) < 0.03


def test_drop_path_acts_in_training_only_and_not_at_zero():
    torch.manual_seed(0)
    net = CellNetwork(in_channels=1, num_classes=3, channels=4, normal_cells=1, genotype=_genotype())
    x = torch.randn(6, 1, 8, 8)
    net.eval()
    reference = net(x)
    net.drop_path_prob = 0.9
    assert torch.equal(net(x), reference)  # eval mode ignores drop-path
    net.train()
    net.drop_path_prob = 0.0
    torch.manual_seed(1)
    a = net(x)
    net.drop_path_prob = 0.9
    torch.manual_seed(1)
    assert not torch.allclose(net(x), a)


def test_auxiliary_head_reads_the_second_reduction_and_is_not_counted():
    torch.manual_seed(0)
    g = _genotype()
    plain = CellNetwork(in_channels=1, num_classes=10, channels=4, normal_cells=1, genotype=g)
    aux = CellNetwork(in_channels=1, num_classes=10, channels=4, normal_cells=1, genotype=g, auxiliary=True)
    assert plain.num_parameters() == aux.num_parameters()
    head = sum(p.numel() for p in aux.auxiliary.parameters())
    assert aux.num_parameters(auxiliary=True) == aux.num_parameters() + head
    logits, aux_logits = aux.forward_with_auxiliary(torch.randn(5, 1, 8, 8))
    assert logits.shape == aux_logits.shape == (5, 10)
    assert plain.forward_with_auxiliary(torch.randn(5, 1, 8, 8))[1] is None
    # Its input is the output of cell 2N + 1 (the second reduction), with 4C channels.
    after = aux._auxiliary_after
    assert aux.kinds[after] == "reduce" and aux.kinds[:after].count("reduce") == 1
    with pytest.raises(ValueError, match="auxiliary=True"):
        CellNetwork(in_channels=1, num_classes=10, channels=4, normal_cells=1, auxiliary=True)


def _config(**kw):
    base = dict(genotype=_genotype(), dataset="digits", channels=4, normal_cells=1, epochs=3, batch_size=64,
                cutout=2)
    base.update(kw)
    return RetrainConfig(**base)


def test_retrain_resumes_exactly_after_a_kill(tmp_path, monkeypatch):
    full = run(_config(), out=tmp_path / "full", progress=False)
    original = RetrainRun.train_epoch

    def killed_in_epoch_3(self, progress):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return original(self, progress)

    monkeypatch.setattr(RetrainRun, "train_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(_config(), out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(RetrainRun, "train_epoch", original)
    resumed = run(out=tmp_path / "cut", resume=True, progress=False)

    def rows(d):
        return [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]

    assert [r["train_loss"] for r in rows("full")] == [r["train_loss"] for r in rows("cut")]
    assert [r["drop_path"] for r in rows("full")] == pytest.approx([0.0, 0.1, 0.2])
    full.pop("seconds"), resumed.pop("seconds")
    assert full == resumed
    assert 0.0 <= full["test_error"] <= 1.0
    # The saved weights rebuild the trained network from the JSON alone.
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    net = CellNetwork(in_channels=1, num_classes=10, channels=4, normal_cells=1, auxiliary=True,
                      genotype=json.loads((tmp_path / "full" / "genotype.json").read_text()))
    net.load_state_dict(torch.load(tmp_path / "full" / "model.pt", weights_only=True))
    assert config["genotype"] == net.genotype and net.num_parameters() == full["num_parameters"]


@pytest.mark.parametrize(
    "changes, message",
    [(dict(drop_path=1.0), "drop_path"), (dict(epochs=0), "epochs"),
     (dict(auxiliary_weight=-1), "auxiliary_weight"),
     (dict(genotype={"normal": []}), "genotype maps exactly")],
)
def test_bad_retrain_configs_state_the_rule_and_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes).validate()


def test_cli_retrains_a_search_run_directory_and_explains_bad_input(tmp_path, capsys):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "genotype.json").write_text(json.dumps(_genotype()))
    argv = ["retrain", str(tmp_path / "search"), "--dataset", "digits", "--epochs", "1", "--channels", "4",
            "--cells", "1", "--auxiliary-weight", "0", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "re")]) == 0
    assert json.loads((tmp_path / "re" / "results.json").read_text())["num_parameters"] > 0
    capsys.readouterr()
    assert main(["retrain", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "No genotype at" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"normal": [], "reduce": []}))
    assert main(["retrain", str(tmp_path / "bad.json"), "--out", str(tmp_path / "y")]) == 2
    assert "The normal cell needs" in capsys.readouterr().err
    assert main(["retrain", str(tmp_path / "bad.json")]) == 2
    assert "needs both" in capsys.readouterr().err
