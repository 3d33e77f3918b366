"""bayesnas: Bayesian, probabilistic neural architecture search on Pyro and PyTorch.

A search space is a Pyro model whose architectural decisions are named ``pyro.sample`` sites
(:mod:`bayesnas.sites`); a guide (:mod:`bayesnas.guides`) is a distribution over them; search
fits the guide while the weights train, in one loop (:mod:`bayesnas.infer`), with natural-
gradient optimizers over θ (:mod:`bayesnas.optim`).
"""

__version__ = "0.1.0"
