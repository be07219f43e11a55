"""The CLI's shorthand flags, and the plan they imply.

Flags carry no defaults of their own: a flag that is not given leaves its key out, and the plan's schema
fills it in, so the CLI and plans share one source of truth. Help texts come from the same schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import PydanticUndefined

from pcrobust.errors import PcrobustError
from pcrobust.schema import Schema

# flag name → (plan table, key)
PLAN_FLAGS: dict[str, tuple[str, str]] = {
    "plugin": ("model", "plugin"), "model": ("model", "name"), "weights": ("model", "weights"),
    "gradient_mode": ("model", "gradient_mode"), "dataset": ("data", "dataset"), "split": ("data", "split"),
    "data": ("data", "path"), "masks": ("data", "masks"),
    "n_clean": ("data", "n"), "timesteps": ("run", "timesteps"), "device": ("run", "device"),
    "batch_size": ("run", "batch_size"), "images_per_unit": ("run", "images_per_unit"), "level": ("run", "level"),
    "precision": ("run", "precision"),
    "checkpoint_timesteps": ("run", "checkpoint_timesteps"),
}
# flag name → key of the attack section
ATTACK_FLAGS: dict[str, str] = {
    "epsilons": "epsilons", "n_attack": "n", "target_mode": "target_mode", "target_shift": "target_shift",
    "attack_readout": "readout", "criterion": "criterion", "norm": "norm", "selection": "selection",
}
# flag name → key of the attack's own options
ATTACK_OPTION_FLAGS: tuple[str, ...] = ("steps", "rel_stepsize", "random_start", "backend")
DEFAULT_ATTACK = "bim"
# shorthand attack name → the attack section it stands for
NAMED_SECTIONS: dict[str, dict[str, Any]] = {
    "transfer": {"attack": "bim", "readout": "first", "name": "transfer"},  # from the model's own t = 0 network
}
# the analysis section kinds ``--analyses`` adds, in this order
ANALYSES: tuple[str, ...] = ("reconstruction", "representation")


def field_help(schema: type[Schema], name: str, extra: str = "") -> str:
    """A flag's help text: the schema field's description and its default."""
    info = schema.model_fields[name]
    default = info.default
    shown = "" if default in (None, PydanticUndefined) else f" [default: {_shown(default)}]"
    return f"{info.description or name}{extra}{shown}"


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def number_list(value: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise PcrobustError(f"--{flag} takes comma-separated numbers, got {value!r}") from None


def key_values(pairs: Sequence[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PcrobustError(f"options are KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def plan_from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The plan the flags imply: clean, then noise (unless ``--noise-sigmas ''``), then corruptions (with
    ``--corruptions``), then one section per attack (``--attack``, or ``--attacks``; none with ``--attack none``),
    then diagnostics with ``--diagnostics``, then gradcam with ``--gradcam LAYER``, then the analyses of
    ``--analyses``; only the keys of flags given."""
    plan: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "run": {}}
    for flag, (table, key) in PLAN_FLAGS.items():
        if flags.get(flag) is not None:
            plan[table][key] = flags[flag]
    if flags.get("model_options"):
        plan["model"]["options"] = key_values(flags["model_options"])
    if flags.get("seed") is not None:
        plan["data"]["seed"] = plan["run"]["seed"] = flags["seed"]
    sections: list[dict[str, Any]] = [{"kind": "clean"}]
    sigmas = flags.get("noise_sigmas")
    if sigmas is None:
        sections.append({"kind": "noise"})
    elif number_list(sigmas, "noise-sigmas"):
        sections.append({"kind": "noise", "sigmas": number_list(sigmas, "noise-sigmas")})
    corruption = corruption_section(flags)
    if corruption is not None:
        sections.append(corruption)
    names = _attack_names(flags)
    for name in names:
        named = NAMED_SECTIONS.get(name, {"attack": name})
        section: dict[str, Any] = {"kind": "attack", **named}
        for flag, key in ATTACK_FLAGS.items():
            if flags.get(flag) is not None and key not in named:
                section[key] = number_list(flags[flag], "epsilons") if flag == "epsilons" else flags[flag]
        if section.get("epsilons") == []:
            raise PcrobustError("an attack needs at least one epsilon (or --attack none)")
        options = {flag: flags[flag] for flag in ATTACK_OPTION_FLAGS if flags.get(flag) is not None}
        if options:
            section["options"] = options
        sections.append(section)
    if flags.get("diagnostics"):
        sections.append({"kind": "diagnostics"})
    if flags.get("gradcam"):
        sections.append({"kind": "gradcam", "layer": flags["gradcam"]})
    sections.extend(analysis_sections(flags))
    return {**{table: keys for table, keys in plan.items() if keys}, "sections": sections}


def severity_list(value: str) -> list[int]:
    """``--severities``: comma-separated integers and ranges, e.g. ``1-5`` or ``1,3,5``."""
    found: list[int] = []
    try:
        for part in (p.strip() for p in value.split(",") if p.strip()):
            low, dash, high = part.partition("-")
            found.extend(range(int(low), int(high) + 1) if dash else [int(part)])
    except ValueError:
        raise PcrobustError(f"--severities takes integers and ranges such as 1-5 or 1,3,5, got {value!r}") from None
    if not found:
        raise PcrobustError(f"--severities names no severity, got {value!r}")
    return found


def corruption_section(flags: Mapping[str, Any]) -> dict[str, Any] | None:
    """The corruption section of ``--corruptions`` (names or ``all``) and ``--severities``, if given."""
    names, severities, strength = flags.get("corruptions"), flags.get("severities"), flags.get("corruption_strength")
    rendered, workers = flags.get("corrupted_data"), flags.get("corruption_workers")
    if names is None:
        given = next((flag for flag, value in (("--severities", severities), ("--corruption-strength", strength),
                                               ("--corrupted-data", rendered), ("--corruption-workers", workers))
                      if value is not None), "")
        if given:
            raise PcrobustError(f"{given} needs --corruptions (names, or all)")
        return None
    listed = [name.strip() for name in names.split(",") if name.strip()]
    if not listed:
        raise PcrobustError("--corruptions names no corruption; give names, or all")
    section: dict[str, Any] = {"kind": "corruption", "corruptions": "all" if listed == ["all"] else listed}
    if severities is not None:
        section["severities"] = severity_list(severities)
    if strength is not None:
        section["strength"] = strength
    if rendered is not None:
        section["path"] = rendered
    if workers is not None:
        section["workers"] = workers
    return section


def analysis_sections(flags: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The sections of ``--analyses`` (names of :data:`ANALYSES`, or ``all``), with ``--analysis-sigmas`` and
    ``--analysis-n`` if given; σ = 0 (the clean input) goes to reconstruction only, the one that scores it."""
    names, sigmas, n = flags.get("analyses"), flags.get("analysis_sigmas"), flags.get("analysis_n")
    if names is None:
        given = next((flag for flag, value in (("--analysis-sigmas", sigmas), ("--analysis-n", n))
                      if value is not None), "")
        if given:
            raise PcrobustError(f"{given} needs --analyses (names, or all)")
        return []
    listed = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in listed if name not in (*ANALYSES, "all")]
    if unknown or not listed:
        raise PcrobustError(f"--analyses takes {', '.join(ANALYSES)} or all, got {unknown[0] if unknown else names!r}")
    chosen = ANALYSES if "all" in listed else tuple(name for name in ANALYSES if name in listed)
    values = None if sigmas is None else number_list(sigmas, "analysis-sigmas")
    sections = []
    for kind in chosen:
        section: dict[str, Any] = {"kind": kind}
        if values is not None:
            section["sigmas"] = [v for v in values if v != 0] if kind == "representation" else values
            if not section["sigmas"]:
                raise PcrobustError(f"--analysis-sigmas gives {kind} no σ; it compares noisy copies (σ > 0) "
                                    "with the clean image")
        if n is not None:
            section["n"] = n
        sections.append(section)
    return sections


def _attack_names(flags: Mapping[str, Any]) -> list[str]:
    """``--attack NAME`` (default bim; ``none`` for no attack) or ``--attacks A,B,...``: one section each, at
    each attack's default budget (its options and ε grid are the attack's own, so they take no shared flag)."""
    if not flags.get("attacks"):
        attack = flags.get("attack") or DEFAULT_ATTACK
        return [] if attack.lower() == "none" else [attack]
    if flags.get("attack"):
        raise PcrobustError("--attack and --attacks exclude each other")
    shared = [f"--{name.replace('_', '-')}" for name in ("epsilons", "norm", *ATTACK_OPTION_FLAGS)
              if flags.get(name) is not None]
    if shared:
        raise PcrobustError(f"--attacks runs each attack at its default budget, so it takes no {shared[0]}; "
                            "edit the plan `pcrobust plan --attacks ...` prints instead")
    return [name.strip() for name in flags["attacks"].split(",") if name.strip()]


def given_plan_flags(flags: Mapping[str, Any]) -> list[str]:
    """The plan-building flags that were given (they conflict with ``--plan``/``--preset``)."""
    names = [*PLAN_FLAGS, *ATTACK_FLAGS, *ATTACK_OPTION_FLAGS, "seed", "noise_sigmas", "corruptions", "severities",
             "corruption_strength", "corrupted_data", "corruption_workers", "attack", "attacks", "diagnostics",
             "gradcam", "analyses", "analysis_sigmas", "analysis_n"]
    given = [f"--{name.replace('_', '-')}" for name in names if flags.get(name) is not None]
    return given + (["--option"] if flags.get("model_options") else [])
