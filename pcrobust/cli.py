"""The ``pcrobust`` command line: evaluate, report, check, plugins, train."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pcrobust.errors import PcrobustError

if TYPE_CHECKING:
    from pcrobust.plugins import PluginHost

EXIT_REGRESSION = 1
EXIT_USAGE = 2


def _number_list(value: str, name: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise PcrobustError(f"--{name} takes comma-separated numbers, got {value!r}") from None
    return numbers


def _options(pairs: Sequence[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PcrobustError(f"options are KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def _host() -> PluginHost:
    """The plugin host, imported on first use so that ``--help`` stays fast."""
    from pcrobust.plugins import PluginHost

    return PluginHost.from_environment()


@click.group()
@click.version_option(package_name="pcrobust")
def cli() -> None:
    """Per-timestep robustness of recurrent, brain-inspired vision models."""


@cli.command()
@click.option("--plugin", required=True, help="Model-family plugin, e.g. predify.")
@click.option("--model", default=None, help="Model of the plugin (default: the plugin's default model).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="Checkpoint instead of the shipped one.")
@click.option("-o", "--option", "model_options", multiple=True, help="Model option KEY=VALUE (e.g. beta=0.8).")
@click.option("--dataset", default=None, help="Dataset (default: the model's).")
@click.option("--split", default="test", show_default=True)
@click.option("--n-clean", type=int, default=None, help="Images for clean/noise accuracy (default: the split).")
@click.option("--timesteps", type=int, default=None, help="Recurrent updates T (default: the model's).")
@click.option("--attack", default="bim", show_default=True, help="Attack name, or 'none'.")
@click.option("--epsilons", default="0.1,0.2,0.3", show_default=True, help="L∞ budgets, pixel units.")
@click.option("--steps", type=int, default=10, show_default=True)
@click.option("--rel-stepsize", type=float, default=0.2, show_default=True, help="Step size as a fraction of ε.")
@click.option("--random-start/--no-random-start", default=False, show_default=True)
@click.option("--n-attack", type=int, default=100, show_default=True,
              help="Images to attack, chosen among those correct at every timestep.")
@click.option("--target-mode", type=click.Choice(["shift", "random", "least-likely"]), default="shift",
              show_default=True)
@click.option("--target-shift", type=int, default=1, show_default=True, help="k in target = (y + k) mod K.")
@click.option("--attack-readout", type=click.Choice(["t", "avg", "last"]), default="t", show_default=True)
@click.option("--gradient-mode", default=None, help="exact (default) or detached, where the model offers it.")
@click.option("--noise-sigmas", default="0.1,0.2,0.3", show_default=True, help="Gaussian σ, pixel units; '' for none.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True, help="Inputs per forward call.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="pcrobust-results", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate(out: str, quiet: bool, model_options: tuple[str, ...], epsilons: str, noise_sigmas: str,
             attack: str, **settings: Any) -> int:
    """Evaluate a model at every timestep; write results.json, results.csv and plots to --out."""
    from pcrobust.config import EvaluationConfig
    from pcrobust.evaluation import resolve, run
    from pcrobust.results import write_json, write_report

    config = EvaluationConfig(
        model_options=_options(model_options),
        epsilons=_number_list(epsilons, "epsilons"),
        noise_sigmas=_number_list(noise_sigmas, "noise-sigmas"),
        attack=None if attack.lower() == "none" else attack,
        progress=not quiet,
        **settings,
    )
    out_dir = Path(out)
    host = _host()
    setup = resolve(host, config)
    out_dir.mkdir(parents=True, exist_ok=True)  # fail before the work, not after it
    results = run(host, setup, config)
    path = write_json(results, out_dir / "results.json")
    write_report(results, out_dir)
    _print_summary(results)
    if config.attack and not results["attacks"]:
        click.echo("no image was classified correctly at every timestep, so no attack was run", err=True)
    click.echo(f"results written to {path}")
    return 0


def _print_summary(results: dict[str, Any]) -> None:
    ts = results["timesteps"]
    fmt = " ".join(f"{t:>6}" for t in ts)
    click.echo(f"{'timestep':<28}{fmt}")
    rows = [("clean accuracy", results["clean"]["accuracy"])]
    rows += [(f"{a['attack']} ε={a['epsilon']:g} success", a["success_rate"]) for a in results["attacks"]]
    rows += [(f"noise σ={n['sigma']:g} accuracy", n["accuracy"]) for n in results["noise"]]
    for label, values in rows:
        click.echo(f"{label:<28}" + " ".join(f"{v:>6.3f}" for v in values))


@cli.command()
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Default: the results file's folder.")
def report(results_file: str, out: str | None) -> int:
    """Regenerate results.csv and the plots from a results.json."""
    from pcrobust.results import load_results, write_report

    results = load_results(Path(results_file))
    for path in write_report(results, Path(out) if out else Path(results_file).parent):
        click.echo(str(path))
    return 0


@cli.command()
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False))
@click.option("--tolerance", type=float, default=0.02, show_default=True,
              help="Largest allowed worsening of any metric (absolute, in rate units).")
def check(results_file: str, baseline: str, tolerance: float) -> int:
    """Exit 1 if any metric shared with the baseline got worse by more than the tolerance."""
    from pcrobust.check import metrics, regressions
    from pcrobust.results import load_results

    results, base = load_results(Path(results_file)), load_results(Path(baseline))
    found = regressions(results, base, tolerance)
    shared = len(set(metrics(results)) & set(metrics(base)))
    if found:
        click.echo(f"{len(found)} of {shared} shared metrics regressed beyond tolerance {tolerance:g}:")
        for item in found:
            click.echo(f"  {item}")
        return EXIT_REGRESSION
    click.echo(f"ok: {shared} shared metrics within tolerance {tolerance:g} of the baseline")
    return 0


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> int:
    """List installed plugins, their versions and what they register."""
    host = _host()
    listing = [{"name": info.name, "distribution": info.distribution, "version": info.version,
                **host.registered_by(info.name)} for info in host.info.values()]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return 0
    for item in listing:
        click.echo(f"{item['name']} ({item['distribution']} {item['version']})")
        for kind in ("models", "attacks", "datasets"):
            if item[kind]:
                click.echo(f"  {kind}: {', '.join(item[kind])}")
    return 0


@cli.command()
@click.option("--plugin", required=True)
@click.option("--model", default=None)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint file to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--option", "options", multiple=True, help="Training option KEY=VALUE.")
def train(plugin: str, model: str | None, out: str, seed: int, options: tuple[str, ...]) -> int:
    """Train a model's weights as its plugin defines (reproduces shipped checkpoints)."""
    import torch

    from pcrobust.registry import TrainingRequest

    host = _host()
    entry = host.model(plugin, model)
    if entry.train is None:
        raise PcrobustError(f"model {entry.name!r} of plugin {plugin!r} has no training recipe")
    torch.use_deterministic_algorithms(True)
    path = entry.train(TrainingRequest(Path(out), seed, _options(options), host.registries.datasets))
    click.echo(f"checkpoint written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, regressions exit 1."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="pcrobust", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"pcrobust: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_USAGE
    except (PcrobustError, OSError) as exc:
        click.echo(f"pcrobust: error: {exc}", err=True)
        return EXIT_USAGE
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
