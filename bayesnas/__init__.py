"""bayesnas: Bayesian, probabilistic neural architecture search on Pyro and PyTorch.

A search space is a Pyro model whose architectural decisions are named ``pyro.sample`` sites
(:mod:`bayesnas.sites`); a guide (:mod:`bayesnas.guides`) is a distribution over them; search
fits the guide while the weights train, in one loop (:mod:`bayesnas.infer`), with natural-
gradient optimizers over θ (:mod:`bayesnas.optim`).
"""

__version__ = "0.1.0"

# In a source checkout, `models/` and `guides/` sit beside this package (the design card's
# layout) and install as bayesnas.models / bayesnas.guides. When the checkout itself is first
# on sys.path (`python -m pytest` from the repository root over a non-editable install),
# let the package find them there too.
def _extend_path_in_checkout() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if (root / "models" / "registry.py").exists() and (root / "guides" / "base.py").exists():
        __path__.append(str(root))  # noqa: F821 - the package's own __path__


_extend_path_in_checkout()
