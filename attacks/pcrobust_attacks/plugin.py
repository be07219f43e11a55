"""Entry point of the first-party attacks (``pcrobust`` group, name ``attacks``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import AttackEntry, AttackRegistrar
from pcrobust_attacks.bim import TargetedBIM


@hookimpl
def pcrobust_register_attacks(registry: AttackRegistrar) -> None:
    registry.add(AttackEntry(
        name="bim",
        description="targeted BIM, L∞ (sign-gradient steps of rel_stepsize·ε; random start optional)",
        build=TargetedBIM,
    ))
