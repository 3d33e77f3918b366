"""Guide state by site name.

A guide keeps its per-site tensors in ``nn.ParameterList`` (one entry per site, in site
order), so torch's own ``state_dict`` keys are positional (``thetas.0``): declaring the sites
in another order and loading an old state would match every key and silently swap θ between
sites. The guides here save each per-site tensor under the key ``sites.<site>.<field>``
(``sites.cell.normal.n2.op0.theta``; the site name may contain dots, the field never does)
and load by name, refusing a state whose sites differ from the guide's.

Only the keys change: the parameters, their registration order (``parameters()``, which
feeds the optimizers), their names (``named_parameters()``, which ``pyro.module`` uses) and
their tensors stay exactly what ``nn.ParameterList`` gives.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "SITES", "NamedSiteState", "check_site_order", "check_state", "legacy_error", "rename_keys", "site_key",
    "site_order", "split_site_key",
]

#: The first part of every per-site key.
SITES = "sites."


def site_key(site: str, field: str) -> str:
    """The state key of one per-site tensor: ``sites.<site>.<field>``."""
    return f"{SITES}{site}.{field}"


def split_site_key(key: str) -> tuple[str, str] | None:
    """``(site, field)`` of a per-site key, or ``None`` for any other key.

    The field is the part after the last dot: fields have no dots, site names may.
    """
    if not key.startswith(SITES):
        return None
    site, sep, field = key[len(SITES):].rpartition(".")
    return (site, field) if sep and site and field else None


def site_order(state: Mapping[str, Any]) -> list[str]:
    """The sites of a named guide state in the order they were saved (the guide's site order
    then, which is also the order of its θ in ``parameters()`` and so in the optimizers)."""
    out: dict[str, None] = {}
    for key in state:
        parsed = split_site_key(key)
        if parsed is not None:
            out.setdefault(parsed[0], None)
    return list(out)


def check_site_order(guide: nn.Module, state: Mapping[str, Any]) -> None:
    """Raise a ValueError unless ``state`` (a named guide state) has the keys of ``guide``'s own
    state in the same order.

    The guide itself loads by name in any order, but an optimizer's state is positional (its
    i-th parameter, and each param group's options such as a Gaussian site's grid bound):
    check this before loading the optimizers saved beside a guide state.
    """
    saved, now = list(state), list(guide.state_dict(keep_vars=True))
    if saved != now:
        raise ValueError(
            f"The guide's state entries come in another order than when the state was saved, so "
            f"optimizer states saved with it (positional by parameter) would go to the wrong sites: "
            f"the order must be the same to load them. Saved sites: {site_order(state)} "
            f"({len(saved)} entries); the guide's now: {site_order(dict.fromkeys(now))} ({len(now)} entries)."
        )


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_state(owner: str, expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> None:
    """Raise a ValueError naming every missing, extra and reshaped site (and other entry) of
    ``given`` against ``expected``; both are keyed as :func:`site_key` (plus plain keys)."""
    exp_sites: dict[str, dict[str, tuple[int, ...]]] = {}
    got_sites: dict[str, dict[str, tuple[int, ...]]] = {}
    exp_other: list[str] = []
    got_other: list[str] = []
    for keys, sites, other in ((expected, exp_sites, exp_other), (given, got_sites, got_other)):
        for key, value in keys.items():
            parsed = split_site_key(key)
            if parsed is None:
                other.append(key)
            else:
                sites.setdefault(parsed[0], {})[parsed[1]] = _shape(value)
    problems = []
    missing = [s for s in exp_sites if s not in got_sites]
    extra = [s for s in got_sites if s not in exp_sites]
    if missing:
        problems.append(f"missing sites (declared by the guide, absent from the state): {missing}")
    if extra:
        problems.append(f"extra sites (in the state, not declared by the guide): {extra}")
    reshaped, missing_fields, extra_fields = [], [], []
    for site, fields in exp_sites.items():
        got = got_sites.get(site)
        if got is None:
            continue
        missing_fields += [site_key(site, f) for f in fields if f not in got]
        extra_fields += [site_key(site, f) for f in got if f not in fields]
        reshaped += [
            f"{site!r} {f}: shape {got[f]} in the state, {shape} in the guide"
            for f, shape in fields.items()
            if f in got and got[f] != shape
        ]
    if reshaped:
        problems.append(f"reshaped sites: {'; '.join(reshaped)}")
    missing_other = missing_fields + [k for k in exp_other if k not in given]
    extra_other = extra_fields + [k for k in got_other if k not in expected]
    if missing_other:
        problems.append(f"missing entries: {missing_other}")
    if extra_other:
        problems.append(f"unexpected entries: {extra_other}")
    reshaped_other = [
        f"{key!r}: shape {_shape(given[key])} in the state, {_shape(expected[key])} in the guide"
        for key in exp_other
        if key in given and _shape(given[key]) != _shape(expected[key])
    ]
    if reshaped_other:
        problems.append(f"reshaped entries: {'; '.join(reshaped_other)}")
    if problems:
        raise ValueError(
            f"Cannot load this state into {owner}: a guide state must hold exactly the guide's sites, "
            f"by name (keys 'sites.<site>.<field>'), with the guide's shapes; but it has "
            + "; ".join(problems) + "."
        )


def legacy_error(owner: str, legacy: Iterable[str], sites: Iterable[str]) -> ValueError:
    """The error for a state saved before guides keyed their state by site name."""
    legacy, sites = sorted(legacy), list(sites)
    shown = legacy[:4] + (["..."] if len(legacy) > 4 else [])
    return ValueError(
        f"Cannot load this state into {owner}: it predates named sites. Its keys {shown} give the "
        f"per-site tensors by position, which does not say which site each belongs to, so loading it "
        f"could silently swap them between sites; a guide state must key them by site name "
        f"('sites.<site>.<field>'). The guide expects the sites {sites}. If the state was saved by a "
        f"guide with exactly these sites in this order, convert it first with "
        f"`guide.upgrade_positional_state(state)`."
    )


class NamedSiteState(nn.Module):
    """Mixin: ``state_dict`` keyed by site name, loading by name with checks.

    A subclass gives :meth:`_site_fields`, torch's key of every per-site tensor with its site
    and field. ``load_state_dict`` raises a ValueError for a state whose sites differ from
    the guide's (missing, extra or reshaped) or whose keys are positional (saved before this
    format), whatever ``strict`` says: a guide state for other sites is never a partial match.
    """

    #: Whether torch's keys of the per-site tensors are positional (``thetas.0``): a state in
    #: them is refused. ``False`` where they already carry the site name (``FixedGuide``):
    #: they are then read as aliases of the named keys.
    _positional_keys: bool = True

    def _site_fields(self) -> dict[str, tuple[str, str]]:
        """torch's key (relative to this module) → ``(site, field)`` of every per-site tensor."""
        raise NotImplementedError

    def _site_names(self) -> list[str]:
        return list(dict.fromkeys(site for site, _ in self._site_fields().values()))

    def _to_named(self) -> dict[str, str]:
        return {k: site_key(*sf) for k, sf in self._site_fields().items()}

    def state_dict(  # type: ignore[override]
        self, *, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """torch's state with every per-site key renamed to ``sites.<site>.<field>`` (same
        tensors, same order)."""
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        rename_keys(out, {prefix + k: prefix + v for k, v in self._to_named().items()}, prefix)
        return out

    def upgrade_positional_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """A state saved before named sites, rekeyed by *this guide's* site order. Only for a
        state known to come from a guide with the same sites in the same order: positional
        keys cannot show a reorder (shapes are still checked on load)."""
        to_named = self._to_named()
        out = OrderedDict((to_named.get(k, k), v) for k, v in state.items())
        if hasattr(state, "_metadata"):
            out._metadata = state._metadata  # type: ignore[attr-defined]
        return out

    def _positional(self, key: str) -> bool:
        head, _, index = key.partition(".")
        return index.isdigit() and isinstance(getattr(self, head, None), nn.ParameterList)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # torch loads a module, then its children from the same (already filtered) dict: so
        # checking the named keys here and renaming them in place to torch's positional keys
        # lets the ParameterLists load them as usual (copy_ into the same tensors).
        fields = self._site_fields()
        if self._positional_keys:
            legacy = [k[len(prefix):] for k in state_dict if k.startswith(prefix)
                      and self._positional(k[len(prefix):])]
            if legacy:
                raise legacy_error(type(self).__name__, legacy, self._site_names())
        else:
            for k in [k for k in state_dict if k.startswith(prefix) and k[len(prefix):] in fields]:
                state_dict[prefix + site_key(*fields[k[len(prefix):]])] = state_dict.pop(k)
        given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        check_state(type(self).__name__, self.state_dict(keep_vars=True), given)
        for k, sf in fields.items():
            state_dict[prefix + k] = state_dict.pop(prefix + site_key(*sf))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def rename_keys(state: dict[str, Any], names: Mapping[str, str], prefix: str) -> None:
    """Rename the keys of ``state`` under ``prefix`` by ``names`` in place, keeping their order.

    A module's own entries are the last ones of ``state`` when its ``state_dict`` returns (a
    parent saves its children one after the other), so moving them to the end in order keeps
    the whole order.
    """
    for key in [k for k in state if k.startswith(prefix)]:
        state[names.get(key, key)] = state.pop(key)
