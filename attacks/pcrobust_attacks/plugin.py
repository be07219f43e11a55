"""Entry point of the first-party attacks (``pcrobust`` group, name ``attacks``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import AttackEntry, AttackRegistrar
from pcrobust_attacks.backends import LibraryBIM, LibraryHSJ, LibraryRPGD
from pcrobust_attacks.bim import BIM, BIMOptions
from pcrobust_attacks.hsj import HopSkipJump, HSJOptions
from pcrobust_attacks.rpgd import RPGD, RPGDOptions
from pcrobust_attacks.spsa import SPSA, SPSAOptions


@hookimpl
def pcrobust_register_attacks(registry: AttackRegistrar) -> None:
    registry.add(AttackEntry(
        name="bim",
        description="BIM, L∞ (sign-gradient steps of rel_stepsize·ε; random start optional), targeted or untargeted",
        build=BIM,
        options=BIMOptions,
        norms=("linf",),
        default_epsilons={"linf": (0.1, 0.2, 0.3)},
        backends={"foolbox": LibraryBIM, "art": LibraryBIM},
    ))
    registry.add(AttackEntry(
        name="hsj",
        description="HopSkipJump, L2 or L∞, decision-based (Chen et al.): from the nearest image classified as the "
                    "goal, the smallest adversarial perturbation it finds along the boundary",
        build=HopSkipJump,
        options=HSJOptions,
        norms=("l2", "linf"),
        default_epsilons={"l2": (1.0, 2.0, 3.0), "linf": (0.1, 0.2, 0.3)},
        criteria=("targeted", "untargeted"),
        backends={"foolbox": LibraryHSJ},
    ))
    registry.add(AttackEntry(
        name="rpgd",
        description="L2 PGD with a random start uniform in the ε-ball (Madry et al.), restarts optional",
        build=RPGD,
        options=RPGDOptions,
        norms=("l2",),
        default_epsilons={"l2": (0.5, 1.0, 2.0)},
        backends={"foolbox": LibraryRPGD, "art": LibraryRPGD},
    ))
    registry.add(AttackEntry(
        name="spsa",
        description="SPSA, L∞, gradient-free (Uesato et al.): Adam on Rademacher estimates of the margin loss",
        build=SPSA,
        options=SPSAOptions,
        norms=("linf",),
        default_epsilons={"linf": (0.1, 0.2, 0.3)},
    ))
