"""The one resumable epoch loop (bayesnas.runs.loop.run_epochs), tested directly."""

import json

import pytest
import torch

import bayesnas.runs.loop as loop
from bayesnas.runs.loop import run_epochs


class Counter:
    """A 'training' whose state is a tensor and a generator: exact resume is checkable."""

    def __init__(self):
        self.w = torch.zeros(3)
        self.gen = torch.Generator().manual_seed(0)
        self.calls = []

    def run_epoch(self, epoch):
        self.calls.append(epoch)
        self.w += torch.rand(3, generator=self.gen)
        return {"loss": float(self.w.sum()), "iteration": 10 * (epoch + 1)}

    def state(self):
        return {"w": self.w.clone(), "gen": self.gen.get_state()}

    def load(self, saved):
        self.w = saved["w"].clone()
        self.gen.set_state(saved["gen"])


def _rows(phase):
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"}
            for x in (phase / "metrics.jsonl").read_text().splitlines()]


def _run(phase, counter, total=4, **kw):
    run_epochs(phase, total, counter.run_epoch, counter.state, counter.load, progress=False, desc="toy", **kw)


def test_a_kill_between_log_and_checkpoint_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    whole = Counter()
    _run(tmp_path / "whole", whole)
    real_save = loop.save_checkpoint

    def dies_at_epoch_3(path, state):
        if state["epoch"] == 3:
            raise KeyboardInterrupt  # epoch 3 is logged, its checkpoint never written
        real_save(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", dies_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", Counter())
    assert [r["epoch"] for r in _rows(tmp_path / "cut")] == [1, 2, 3]  # one row past the checkpoint
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed = Counter()
    _run(tmp_path / "cut", resumed)
    assert resumed.calls == [2, 3]  # continued from the checkpoint of epoch 2
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "whole")  # the stale row of epoch 3 was cut
    assert torch.equal(resumed.w, whole.w)


def test_only_the_main_process_writes_and_every_process_resumes(tmp_path):
    other = Counter()
    _run(tmp_path / "rank1", other, main=False)
    assert other.calls == [0, 1, 2, 3] and not (tmp_path / "rank1").exists()  # trained, wrote nothing
    main = Counter()
    _run(tmp_path / "shared", main, total=2)
    follower = Counter()
    _run(tmp_path / "shared", follower, total=4, main=False)  # reads rank 0's checkpoint
    assert follower.calls == [2, 3]
    assert [r["epoch"] for r in _rows(tmp_path / "shared")] == [1, 2]  # and writes nothing


def test_history_starts_at_epoch_0_and_hooks_run_before_the_checkpoint(tmp_path):
    from bayesnas.analysis.history import PosteriorHistory
    from bayesnas.guides import BernoulliGuide
    from bayesnas.sites import SiteSpec

    guide = BernoulliGuide([SiteSpec("b", "bernoulli", (2,))])
    history = PosteriorHistory(tmp_path / "history.jsonl")
    seen = []

    def after_log(row):
        seen.append((row["epoch"], (tmp_path / "p" / "checkpoint.pt").exists()))

    _run(tmp_path / "p", Counter(), total=2, history=history, posterior=guide, after_log=after_log)
    assert [e for e, _ in history.posteriors(by="epoch")] == [0, 1, 2]
    assert seen == [(1, False), (2, True)]  # logged before epoch 1's checkpoint exists


def test_a_non_finite_loss_stops_the_run_naming_the_epoch(tmp_path):
    def diverges(epoch):
        return {"train_loss": float("nan") if epoch == 1 else 1.0}

    with pytest.raises(FloatingPointError, match="The training loss became nan in epoch 2 of toy"):
        run_epochs(tmp_path, 3, diverges, dict, lambda s: None, progress=False, desc="toy",
                   loss_key="train_loss")
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
