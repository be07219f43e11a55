"""Entry point of the first-party attacks (``pcrobust`` group, name ``attacks``)."""

from __future__ import annotations

from pcrobust.attacks import GradientAttackOptions
from pcrobust.hookspecs import hookimpl
from pcrobust.registry import AttackEntry, AttackRegistrar
from pcrobust_attacks.bim import BIM


@hookimpl
def pcrobust_register_attacks(registry: AttackRegistrar) -> None:
    registry.add(AttackEntry(
        name="bim",
        description="BIM, L∞ (sign-gradient steps of rel_stepsize·ε; random start optional), targeted or untargeted",
        build=BIM,
        options=GradientAttackOptions,
        norms=("linf",),
        default_epsilons={"linf": (0.1, 0.2, 0.3)},
    ))
