"""Run diagnostics (bayesnas.analysis.diagnostics): each check fires on the failure it looks for
and stays quiet otherwise; the optimizers report which variables sit at their clip bound."""

import json
import math
from pathlib import Path

import pytest
import torch

from bayesnas.analysis import Posterior
from bayesnas.analysis.diagnostics import (
    at_clip_bound,
    credible_set_ties,
    decided_at_chance,
    diagnose,
    diagnose_logged,
    parameter_free_drift,
    posterior_unmoved,
    warning_lines,
)
from bayesnas.optim import BernoulliNaturalGradient, CategoricalNaturalGradient

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example-run"
LN10 = math.log(10)


def _history(losses, entropies, num_variables=10):
    return [{"epoch": e + 1, "train_loss": loss, "entropy": h, "num_variables": num_variables,
             "undecided": round(num_variables * h / entropies[0])}
            for e, (loss, h) in enumerate(zip(losses, entropies, strict=True))]


# -- decided at chance -------------------------------------------------------------------------


def test_decided_at_chance_fires_when_the_entropy_went_before_the_loss_moved():
    h0 = 10 * math.log(2)
    history = _history([LN10, LN10, LN10, 1.0], [0.8 * h0, 0.4 * h0, 0.2 * h0, 0.1 * h0])
    d = decided_at_chance(history, num_classes=10, initial_entropy=h0)
    assert d.fired
    assert d.values["last_epoch_at_chance"] == 3 and d.values["entropy_gone"] == pytest.approx(0.8)
    assert "at chance" in d.message and "80%" in d.message


def test_decided_at_chance_is_quiet_when_the_loss_fell_first():
    h0 = 10 * math.log(2)
    history = _history([LN10, 1.5, 0.8, 0.5], [0.9 * h0, 0.7 * h0, 0.3 * h0, 0.1 * h0])
    d = decided_at_chance(history, num_classes=10, initial_entropy=h0)
    assert not d.fired and d.values["last_epoch_at_chance"] == 1


def test_decided_at_chance_fires_when_the_loss_never_left_chance():
    h0 = 4.0
    d = decided_at_chance(_history([LN10] * 3, [3.0, 1.0, 0.5]), num_classes=10, initial_entropy=h0)
    assert d.fired and "never left chance" in d.message


def test_without_a_training_loss_chance_is_read_from_the_validation_error():
    h0 = 4.0
    rows = [{"epoch": e + 1, "val_error": v, "entropy": h}
            for e, (v, h) in enumerate(zip([0.9, 0.88, 0.3], [3.0, 1.0, 0.5], strict=True))]
    d = decided_at_chance(rows, num_classes=10, initial_entropy=h0)  # 0.88 >= 0.95 · 0.9: at chance
    assert d.fired and d.values["measure"] == "val_error" and d.values["last_epoch_at_chance"] == 2
    assert "validation error was at chance (0.880 vs 1 − 1/10 = 0.900)" in d.message
    rows[1]["val_error"] = 0.5  # left chance before most of the entropy went
    assert not decided_at_chance(rows, num_classes=10, initial_entropy=h0).fired


def _bits(*theta):
    return Posterior.from_summary({"b": {"family": "bernoulli", "shape": [len(theta)], "theta": list(theta)}})


def test_a_logged_run_is_diagnosed_from_its_posterior_history():
    """NES and VINNAS log no entropy per epoch: each epoch's comes from its history snapshot."""
    snapshots = [(0, _bits(0.5, 0.5)), (1, _bits(0.99, 0.01)), (2, _bits(0.99, 0.01))]
    metrics = [{"epoch": 1, "loss": LN10}, {"epoch": 2, "loss": 0.5}]
    out = diagnose_logged(metrics, snapshots, num_classes=10, loss_key="loss")
    assert "decided_at_chance" in out["fired"] and "posterior_unmoved" not in out["fired"]
    check = out["checks"]["decided_at_chance"]
    assert check["last_epoch_at_chance"] == 1 and check["entropy_gone"] == pytest.approx(
        1 - _bits(0.99, 0.01).entropy() / (2 * math.log(2)))
    # A history that never moved: unmoved, and not decided at chance.
    flat = [(e, _bits(0.5, 0.5)) for e in range(3)]
    out = diagnose_logged(metrics, flat, num_classes=10, loss_key="loss")
    assert "posterior_unmoved" in out["fired"] and "decided_at_chance" not in out["fired"]
    # The posterior the run reports (VINNAS: its kept epoch's) replaces the last snapshot.
    out = diagnose_logged(metrics, snapshots, num_classes=10, loss_key=None, posterior=flat[0][1])
    assert "posterior_unmoved" in out["fired"]


def test_the_committed_demo_run_was_decided_at_chance():
    """docs/example-run (`make demo`): the loss stayed at ln 10 up to epoch 19 while 28 of its
    31 bits were already decided: the failure the check exists for."""
    history = [json.loads(line) for line in (EXAMPLE / "metrics.jsonl").read_text().splitlines()]
    d = decided_at_chance(history, num_classes=10, initial_entropy=31 * math.log(2))
    assert d.fired
    assert d.values["last_epoch_at_chance"] == 19 and d.values["decided"] == 28


# -- posterior unmoved ---------------------------------------------------------------------------


def test_posterior_unmoved_fires_at_95_percent_of_the_initial_entropy_and_not_below():
    assert posterior_unmoved(initial_entropy=10.0, final_entropy=9.98).fired
    assert posterior_unmoved(initial_entropy=10.0, final_entropy=9.5).fired
    quiet = posterior_unmoved(initial_entropy=10.0, final_entropy=9.0)
    assert not quiet.fired and quiet.values["entropy_kept"] == pytest.approx(0.9)


# -- clip bound ----------------------------------------------------------------------------------


def _stepped_to_the_bound(opt, theta, grad, steps=50):
    for _ in range(steps):
        theta.grad = grad.clone()
        opt.step()


def test_bernoulli_variables_pushed_to_the_clip_bound_are_reported_and_undecided_ones_are_not():
    theta = torch.nn.Parameter(torch.full((4,), 0.5))
    opt = BernoulliNaturalGradient([theta], lr=0.1, theta_min=0.05)
    assert not opt.at_bound()[theta].any()  # θ = 0.5: nowhere near a bound
    # Bits 0 and 1 pushed up and down until Π stops them; bits 2 and 3 untouched.
    _stepped_to_the_bound(opt, theta, torch.tensor([-1.0, 1.0, 0.0, 0.0]))
    assert theta.detach().tolist()[:2] == pytest.approx([0.95, 0.05])
    assert opt.at_bound()[theta].tolist() == [True, True, False, False]


def test_categorical_variables_pushed_to_the_clip_bound_are_reported():
    theta = torch.nn.Parameter(torch.full((2, 3), 1 / 3))
    opt = CategoricalNaturalGradient([theta], lr=0.1, theta_min=0.05)
    assert not opt.at_bound()[theta].any()
    _stepped_to_the_bound(opt, theta, torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert theta.detach()[0].tolist() == pytest.approx([0.9, 0.05, 0.05])
    assert opt.at_bound()[theta].tolist() == [True, False]


def test_at_clip_bound_says_p_mode_is_the_bound():
    fired = at_clip_bound({"layers": torch.tensor([True, True, True])}, mode_probability=0.95**3)
    assert fired.fired and fired.message.startswith("All 3 variables sit at the clip bound")
    assert "p(mode) = 0.857 is the product of the bounds" in fired.message and fired.values["clipped"] == 3
    some = at_clip_bound({"a": torch.tensor([True, False]), "b": [[False, True]]}, mode_probability=0.3)
    assert some.fired and some.message.startswith("2 of 4 variables")
    assert some.values["per_site"] == {"a": 1, "b": 1}
    quiet = at_clip_bound({"layers": torch.tensor([False, False])}, mode_probability=0.3)
    assert not quiet.fired and quiet.values["variables"] == 2


# -- credible-set ties ---------------------------------------------------------------------------


def test_credible_set_ties_names_the_tied_ranks():
    members = [{"probability": p, "log_probability": math.log(p)} for p in (0.5, 0.1, 0.1, 0.1, 0.05)]
    d = credible_set_ties(members)
    assert d.fired and d.values["tied_ranks"] == [[2, 3, 4]] and "2–4" in d.message
    assert not credible_set_ties(members[:2]).fired


def test_an_exactly_flat_posterior_has_tied_credible_ranks():
    """Three bits at the clip bound: every architecture one flip from the mode has the same
    probability (the committed-run pattern "ranks 2–10 are exact ties")."""
    post = Posterior.from_summary({"b": {"family": "bernoulli", "shape": [3], "theta": [0.95, 0.95, 0.95]}})
    d = credible_set_ties(post.credible_set(k=5))
    assert d.fired and d.values["tied_ranks"] == [[2, 3, 4]]


# -- parameter-free drift ------------------------------------------------------------------------


def _cell(probs):
    return Posterior.from_summary({"edges": {"family": "categorical", "shape": [len(probs)], "theta": probs,
                                             "choices": ["skip", "conv_3x3", "max_pool"]}})


def test_parameter_free_drift_fires_on_a_cell_gone_to_skip_and_pool():
    d = parameter_free_drift(_cell([[0.6, 0.02, 0.38], [0.5, 0.01, 0.49], [0.9, 0.05, 0.05]]))
    assert d.fired and d.values["edges"] == 3


def test_parameter_free_drift_is_quiet_on_a_cell_that_kept_its_convolutions():
    assert not parameter_free_drift(_cell([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3]])).fired


def test_layer_skip_bits_pruned_to_skip_are_not_a_collapse():
    post = Posterior.from_summary({"layers": {"family": "bernoulli", "shape": [4], "theta": [0.01] * 4,
                                              "choices": ["skip", "layer"]}})
    d = parameter_free_drift(post)
    assert not d.fired and d.values["edges"] == 0


# -- all of them -----------------------------------------------------------------------------------


def test_diagnose_of_the_committed_demo_run_lists_what_fired_with_one_line_each():
    history = [json.loads(line) for line in (EXAMPLE / "metrics.jsonl").read_text().splitlines()]
    credible = json.loads((EXAMPLE / "credible_set.json").read_text())
    post = Posterior.load(EXAMPLE / "posterior.json")
    theta = torch.tensor(json.loads((EXAMPLE / "posterior.json").read_text())["layers"]["theta"])
    bound = json.loads((EXAMPLE / "config.json").read_text())["theta_min"]  # `make demo`'s --theta-min
    at_bound = {"layers": torch.isclose(torch.minimum(theta, 1 - theta), torch.tensor(bound), atol=1e-6)}
    out = diagnose(history=history, posterior=post, credible=credible, num_classes=10,
                   initial_entropy=31 * math.log(2), at_bound=at_bound)
    assert "decided_at_chance" in out["fired"] and "posterior_unmoved" not in out["fired"]
    assert set(out["checks"]) == {"decided_at_chance", "posterior_unmoved", "at_clip_bound",
                                  "credible_set_ties", "parameter_free_drift"}
    lines = warning_lines(out)
    assert len(lines) == len(out["fired"]) and lines[0].startswith("decided_at_chance: ")
    json.dumps(out)  # JSON-ready for results.json
