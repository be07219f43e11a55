"""The core's own plugin, registered under the name ``builtin`` through the same hooks as any plugin:
the built-in section kinds, clean, noise, corruption, attack, diagnostics and gradcam, and the analyses
reconstruction and representation (the concrete datasets live in the first-party ``datasets`` plugin)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import SectionRegistrar


@hookimpl
def pcrobust_register_sections(registry: SectionRegistrar) -> None:
    from pcrobust.kinds.attack import AttackSection
    from pcrobust.kinds.clean import Clean
    from pcrobust.kinds.corruption import Corruption
    from pcrobust.kinds.diagnostics import Diagnostics
    from pcrobust.kinds.gradcam import Gradcam
    from pcrobust.kinds.noise import Noise
    from pcrobust.kinds.reconstruction import Reconstruction
    from pcrobust.kinds.representation import Representation

    for kind in (Clean(), Noise(), Corruption(), AttackSection(), Diagnostics(), Gradcam(), Reconstruction(),
                 Representation()):
        registry.add(kind)
