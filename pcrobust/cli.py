"""The ``pcrobust`` command line: evaluate, sweep, plan, merge, report, check, plugins, models, presets, train."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from pcrobust.errors import PcrobustError, first_line
from pcrobust.kinds.attack_options import AttackSectionOptions
from pcrobust.shorthand import field_help
from pcrobust.specs import DataSpec, ModelSpec, RunSpec

if TYPE_CHECKING:
    from pcrobust.plan import Plan
    from pcrobust.plugins import PluginHost
    from pcrobust.run.store import RunFolder

EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    """Bad input: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"pcrobust: error: {self.format_message()}", err=True)


class Stopped(UserError):
    """Ctrl-C: the run stopped between units; exit 130."""

    exit_code = EXIT_INTERRUPTED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"pcrobust: {self.format_message()}", err=True)


class PcrobustGroup(click.Group):
    """Turns the core's one-line errors and interruptions into click exceptions with their exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        from pcrobust.run.execute import Interrupted

        try:
            return super().invoke(ctx)
        except Interrupted as exc:
            raise Stopped(str(exc)) from None
        except KeyboardInterrupt:
            raise Stopped("interrupted; finished units are stored; continue with --resume") from None
        except (PcrobustError, OSError) as exc:
            if _settings(ctx).debug:
                traceback.print_exc()
            raise UserError(first_line(exc)) from None


@dataclass(frozen=True)
class Settings:
    """The options given before the command."""

    debug: bool = False
    exclude: tuple[str, ...] = ()


def _settings(ctx: click.Context | None) -> Settings:
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Settings) else Settings()


def _host() -> PluginHost:
    """The plugin host, imported on first use so that ``--help`` stays fast."""
    from pcrobust.plugins import PluginHost

    return PluginHost.from_environment(_settings(click.get_current_context(silent=True)).exclude)


@click.group(cls=PcrobustGroup)
@click.version_option(package_name="pcrobust")
@click.option("--debug", is_flag=True, help="Show the traceback behind an error message.")
@click.option("--exclude-plugin", "exclude", multiple=True, metavar="NAME",
              help="Leave out an installed plugin without importing it (repeatable).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, exclude: tuple[str, ...]) -> None:
    """Per-timestep robustness of recurrent, brain-inspired vision models.

    Exit status: 0 done, 1 a regression found by `check`, 2 bad input (one line on stderr), 130 interrupted."""
    ctx.obj = Settings(debug, exclude)


def plan_options(command: Any) -> Any:
    """The shorthand flags that build a plan (``evaluate`` and ``plan`` share them)."""
    flags = [
        click.option("--plugin", help=field_help(ModelSpec, "plugin")),
        click.option("--model", help=field_help(ModelSpec, "name")),
        click.option("--weights", type=click.Path(dir_okay=False), help=field_help(ModelSpec, "weights")),
        click.option("-o", "--option", "model_options", multiple=True, help="model option KEY=VALUE (e.g. beta=0.8)"),
        click.option("--gradient-mode", help=field_help(ModelSpec, "gradient_mode")),
        click.option("--dataset", help=field_help(DataSpec, "dataset")),
        click.option("--split", help=field_help(DataSpec, "split")),
        click.option("--data", type=click.Path(), help=field_help(DataSpec, "path")),
        click.option("--masks", type=click.Path(), help=field_help(DataSpec, "masks")),
        click.option("--n-clean", type=int, help=field_help(DataSpec, "n")),
        click.option("--seed", type=int, help="seed of the image order and of every random draw [default: 0]"),
        click.option("--timesteps", type=int, help=field_help(RunSpec, "timesteps")),
        click.option("--device", help=field_help(RunSpec, "device")),
        click.option("--precision", help=field_help(RunSpec, "precision")),
        click.option("--checkpoint-timesteps", is_flag=True, default=None,
                     help=field_help(RunSpec, "checkpoint_timesteps")),
        click.option("--batch-size", type=int, help=field_help(RunSpec, "batch_size")),
        click.option("--images-per-unit", type=int, help=field_help(RunSpec, "images_per_unit")),
        click.option("--level", type=float, help=field_help(RunSpec, "level")),
        click.option("--noise-sigmas", help="Gaussian σ, pixel units, comma-separated; '' for no noise section "
                                            "[default: 0.1,0.2,0.3]"),
        click.option("--corruptions", help="ImageNet-C corruptions, comma-separated, or 'all' (the 15 standard and "
                                           "4 extra ones): adds a corruption section [default: none]"),
        click.option("--severities", help="corruption severities, integers or ranges such as 1-5 or 1,3,5 "
                                          "[default: 1-5]"),
        click.option("--corruption-strength", help="corruption parameters: imagenet (the ImageNet-C table at every "
                                                   "size) or cifar (CIFAR-10-C's, for 32 px images) "
                                                   "[default: imagenet]"),
        click.option("--corrupted-data", metavar="DIR", help="score pre-rendered corrupted images instead of "
                                                             "corrupting: ImageNet-C folders or CIFAR-10-C arrays"),
        click.option("--corruption-workers", type=int, help="worker processes that corrupt while the model scores "
                                                            "(0: none) [default: CPU count − 1, at most 4]"),
        click.option("--attack", help="attack of the attack section, or 'none' [default: bim]"),
        click.option("--attacks", help="several attacks, comma-separated (e.g. bim,rpgd,hsj,spsa,transfer): one "
                                       "section each at its default budget; transfer is BIM crafted on the model's "
                                       "own feedforward pass (t = 0) and scored at every timestep"),
        click.option("--diagnostics", is_flag=True, default=None,
                     help="add a diagnostics section: the gradient-masking checks (ε sweep to a large ε, more steps, "
                          "transfer, black-box, gradient norms, gradient modes) at their default budgets"),
        click.option("--gradcam", help="add a gradcam section: Grad-CAM maps of this layer (a module name, e.g. "
                                       "backbone.features.7) at every timestep, with IoU against the dataset's "
                                       "masks when it has them"),
        click.option("--analyses", help="add analysis sections, comma-separated, or 'all': reconstruction (MSE of "
                                        "the model's reconstruction to the clean image, and layer errors) and "
                                        "representation (correlation distance of clean vs noisy layer "
                                        "representations), per timestep, normalised by t=0 [default: none]"),
        click.option("--analysis-sigmas", help="noise σ of the analyses, pixel units, comma-separated; 0 (the "
                                               "clean input) is scored by reconstruction only "
                                               "[default: reconstruction 0,0.1,0.2,0.3, representation 0.1,0.2,0.3]"),
        click.option("--analysis-n", type=int, help="images analysed: the first n evaluated [default: all]"),
        click.option("--epsilons", help=field_help(AttackSectionOptions, "epsilons", ", comma-separated")),
        click.option("--norm", help=field_help(AttackSectionOptions, "norm")),
        click.option("--criterion", help=field_help(AttackSectionOptions, "criterion")),
        click.option("--n-attack", type=int, help=field_help(AttackSectionOptions, "n")),
        click.option("--selection", help=field_help(AttackSectionOptions, "selection")),
        click.option("--target-mode", help=field_help(AttackSectionOptions, "target_mode")),
        click.option("--target-shift", type=int, help=field_help(AttackSectionOptions, "target_shift")),
        click.option("--attack-readout", help=field_help(AttackSectionOptions, "readout")),
        click.option("--steps", type=int, help="attack option steps (gradient attacks) [default: the attack's]"),
        click.option("--rel-stepsize", type=float, help="attack option rel_stepsize [default: the attack's]"),
        click.option("--random-start/--no-random-start", default=None,
                     help="attack option random_start [default: the attack's]"),
        click.option("--backend", help="attack option backend (bim, rpgd): pcrobust, foolbox or art [default: "
                                       "pcrobust]"),
    ]
    for flag in reversed(flags):
        command = flag(command)
    return command


def _plan(host: PluginHost, plan_file: str | None, preset: str | None, flags: dict[str, Any]) -> Plan:
    """The plan of a file, a preset or the shorthand flags (exactly one of them)."""
    from pcrobust.plan import parse_plan, read_plan_file
    from pcrobust.shorthand import given_plan_flags, plan_from_flags

    if plan_file and preset:
        raise PcrobustError("--plan and --preset exclude each other")
    if plan_file or preset:
        conflicting = given_plan_flags(flags)
        if conflicting:
            raise PcrobustError(f"--{'plan' if plan_file else 'preset'} cannot be combined with {conflicting[0]}: "
                                "edit the plan instead (`pcrobust plan` prints it)")
        raw = read_plan_file(Path(plan_file)) if plan_file else host.registries.presets.get(str(preset)).plan()
        return parse_plan(raw, host.registries)
    if not flags.get("plugin"):
        raise PcrobustError("name a plugin (--plugin predify) or a plan (--plan FILE)")
    return parse_plan(plan_from_flags(flags), host.registries)


def plan_sources(command: Any) -> Any:
    """``--plan`` and ``--preset`` (``evaluate`` and ``sweep`` share them)."""
    command = click.option("--preset", help="A plan shipped in a package (see `pcrobust presets`).")(command)
    return click.option("--plan", "plan_file", type=click.Path(dir_okay=False),
                        help="A TOML plan (see `pcrobust plan`).")(command)


@cli.command()
@plan_sources
@plan_options
@click.option("--out", type=click.Path(file_okay=False), default="pcrobust-results", show_default=True,
              help="Folder of the run (one run per folder).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out, skipping finished units.")
@click.option("--shard", default=None, help="Run only shard i of n (i/n, 1-based); merge the folders after.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate(plan_file: str | None, preset: str | None, out: str, resume: bool, shard: str | None, quiet: bool,
             **flags: Any) -> None:
    """Evaluate a model at every timestep; write results.json, report.html, results.csv and plots to --out."""
    from pcrobust.evaluation import run
    from pcrobust.run.execute import Shard
    from pcrobust.run.ranks import Ranks
    from pcrobust.run.store import RunFolder

    host = _host()
    plan = _plan(host, plan_file, preset, flags)
    if plan.sweep is not None:
        raise PcrobustError("the plan has a [sweep] table: run it with `pcrobust sweep`, or remove the table")
    part = Shard.parse(shard) if shard else None
    folder = RunFolder(Path(out))
    ranks = Ranks.from_environment()
    if ranks is not None and not ranks.leader:  # rank 0 holds the folder for all ranks
        run(host, plan, folder, resume=resume, shard=part, progress=False, ranks=ranks)
        return
    with folder.locked():
        results = run(host, plan, folder, resume=resume, shard=part, progress=not quiet, ranks=ranks)
        if results is None:
            click.echo(f"shard {part} stored in {folder.path}; combine the shards with `pcrobust merge`")
            return
        _finish(results, folder)


@cli.command()
@plan_sources
@plan_options
@click.option("--grid", "grid_axes", multiple=True, metavar="KEY=V1,V2,...",
              help="A grid axis: a model option and its values (repeatable, at most two axes; e.g. --grid "
                   "beta=0.2,0.4 --grid lambda=0.1,0.2) [default: the plan's [sweep] table].")
@click.option("--out", type=click.Path(file_okay=False), default="pcrobust-sweep", show_default=True,
              help="Folder of the sweep: sweep.json, the heat maps, and one run folder per grid point.")
@click.option("--resume", is_flag=True, help="Continue a sweep in --out: skip finished points, resume the others.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def sweep(plan_file: str | None, preset: str | None, grid_axes: tuple[str, ...], out: str, resume: bool,
          quiet: bool, **flags: Any) -> None:
    """Run a plan at every point of a grid of model options; write sweep.json and heat maps to --out."""
    from pcrobust.run.ranks import Ranks
    from pcrobust.run.store import RunFolder
    from pcrobust.sweep.grid import parse_grid, spec_grid
    from pcrobust.sweep.run import SWEEP_FILE, Sweep
    from pcrobust.sweep.summary import render_sweep_summary

    if Ranks.from_environment() is not None:
        raise PcrobustError("a sweep runs in one process; to split one point across ranks, evaluate it with "
                            "torchrun and its -o options")
    host = _host()
    plan = _plan(host, plan_file, preset, flags)
    entry = host.model(plan.model.plugin, plan.model.name)
    if plan.sweep is not None and grid_axes:
        raise PcrobustError("the plan has a [sweep] table: give the grid there or with --grid, not both")
    if plan.sweep is not None:
        grid = spec_grid(plan.sweep, entry.option_help, plan.model_options(), entry.name)
    else:
        grid = parse_grid(grid_axes, entry.option_help, plan.model_options(), entry.name)
    folder = RunFolder(Path(out))
    with folder.locked():
        document = Sweep(host, plan, grid, folder.path, click.echo, partial(click.echo, err=True)).run(
            resume=resume, progress=not quiet)
    click.echo(render_sweep_summary(document), nl=False)
    click.echo(f"sweep written to {folder.path / SWEEP_FILE}")


def _finish(results: dict[str, Any], folder: RunFolder) -> None:
    from pcrobust.results import write_json, write_report

    path = write_json(results, folder.path / "results.json")
    written = [path, *write_report(results, folder.path)]
    folder.set_outputs([p.name for p in written])
    _print_summary(results, next((p for p in written if p.name == "report.html"), None))
    click.echo(f"results written to {path}")
    if warning := (results["provenance"].get("contract_check") or {}).get("warning"):
        click.echo(f"pcrobust: warning: model {results['model']['name']!r}: {warning}", err=True)
    for name, message in results["provenance"].get("plugins_left_out", {}).items():
        click.echo(f"pcrobust: warning: left out {message} (silence: pcrobust --exclude-plugin {name} ...)", err=True)


def _print_summary(results: dict[str, Any], report: Path | None = None) -> None:
    from pcrobust.summary import render_summary

    click.echo(render_summary(results, report), nl=False)


@cli.command("plan")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="Validate and print this plan file.")
@click.option("--preset", help="Print this preset's plan.")
@plan_options
def plan_command(plan_file: str | None, preset: str | None, **flags: Any) -> None:
    """Print, as TOML, the plan the flags imply (defaults filled in): edit it and run it with --plan."""
    click.echo(_plan(_host(), plan_file, preset, flags).to_toml(), nl=False)


@cli.command()
def presets() -> None:
    """List the named plans that installed packages ship (run one with --preset NAME)."""
    for entry in _host().registries.presets:
        click.echo(f"{entry.name} ({entry.plugin}): {entry.description}")


@cli.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder of the merged run.")
def merge(shards: tuple[str, ...], out: str) -> None:
    """Merge shard folders of one plan into one run, as if a single process had run it."""
    from pcrobust.run.merge import merge_shards

    host = _host()
    results, folder = merge_shards(host, [Path(s) for s in shards], Path(out))
    _finish(results, folder)


@cli.command()
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Default: the results file's folder.")
def report(results_file: str, out: str | None) -> None:
    """Regenerate results.csv, the plots and report.html from a results.json."""
    from pcrobust.results import load_results, write_report

    results = load_results(Path(results_file))
    for path in write_report(results, Path(out) if out else Path(results_file).parent):
        click.echo(str(path))


@cli.command()
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False),
              help="A results.json to compare against (e.g. baselines/predify-mnist-pnet.json).")
@click.option("--tolerance", type=float, default=0.02, show_default=True,
              help="Largest allowed worsening of any metric (absolute, in rate units).")
@click.option("--outside-interval", is_flag=True,
              help="Flag a worsening only when the baseline also lies outside the result's confidence interval.")
@click.pass_context
def check(ctx: click.Context, results_file: str, baseline: str, tolerance: float, outside_interval: bool) -> None:
    """Exit 1 if any metric shared with the baseline got worse by more than the tolerance."""
    from pcrobust.check import metrics, regressions
    from pcrobust.results import load_results

    results, base = load_results(Path(results_file)), load_results(Path(baseline))
    found = regressions(results, base, tolerance, outside_interval)
    shared = len(set(metrics(results)) & set(metrics(base)))
    if found:
        click.echo(f"{len(found)} of {shared} shared metrics regressed beyond tolerance {tolerance:g}:")
        for item in found:
            click.echo(f"  {item}")
        ctx.exit(EXIT_REGRESSION)
    click.echo(f"ok: {shared} shared metrics within tolerance {tolerance:g} of the baseline")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions, their default model and what they register."""
    host = _host()
    host.registries  # noqa: B018 - filling the registries may leave out plugins whose hooks fail
    listing = [_plugin_listing(host, info.name) for info in host.info.values()]
    listing += [{"name": name, "left_out": why} for name, why in host.broken.items() if name not in host.info]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for item in listing:
        if "left_out" in item:
            click.echo(f"{item['name']}: left out: {item['left_out']} (silence: --exclude-plugin {item['name']})")
            continue
        click.echo(f"{item['name']} ({item['distribution']} {item['version']})"
                   + (f", default model {item['default_model']}" if item["default_model"] else ""))
        for kind, names in item.items():
            if isinstance(names, list) and names:
                click.echo(f"  {kind}: {', '.join(names)}")
                for name in names:
                    click.echo(f"    {name}: {item['descriptions'][kind][name]}")


def _plugin_listing(host: PluginHost, name: str) -> dict[str, Any]:
    info = host.info[name]
    head = {"name": name, "distribution": info.distribution, "version": info.version}
    if name in host.broken:
        return {**head, "left_out": host.broken[name]}
    registered = host.registered_by(name)
    descriptions = {kind: {entry: str(host.registries.by_kind()[kind].get(entry).description) for entry in names}
                    for kind, names in registered.items()}
    return {**head, **registered, "default_model": host.default_model(name), "descriptions": descriptions}


@cli.command()
@click.option("--plugin", default=None, help="Only the models of this plugin.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(plugin: str | None, as_json: bool) -> None:
    """List the models (all, or one plugin's): dataset, default, and the options `-o KEY=VALUE` they take."""
    host = _host()
    if plugin is not None:
        host.plugin(plugin)
    listing: list[dict[str, Any]] = [{"name": entry.name, "plugin": entry.plugin, "description": entry.description,
                "dataset": entry.dataset or None, "default": entry.name == host.default_model(entry.plugin),
                "trainable": entry.train is not None, "options": dict(entry.option_help)}
               for entry in host.registries.models if plugin in (None, entry.plugin)]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for item in listing:
        flags = [f"plugin {item['plugin']}", f"dataset {item['dataset'] or 'given with --dataset'}"]
        flags += [flag for flag, given in (("default", item["default"]),
                                           ("trainable with `pcrobust train`", item["trainable"])) if given]
        click.echo(f"{item['name']} ({', '.join(flags)}): {item['description']}")
        for key, text in item["options"].items():
            click.echo(f"  -o {key}=...  {text}")


@cli.command()
@click.option("--plugin", required=True, help="The plugin whose model is trained.")
@click.option("--model", default=None, help="The model to train [default: the plugin's default model].")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint file to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw of the training.")
@click.option("-o", "--option", "options", multiple=True, help="Training option KEY=VALUE.")
@click.option("--algorithm", default=None,
              help="Learning algorithm, for a model that offers several (the same as -o algorithm=NAME).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the resumable training state, written after every epoch (for a trainer that keeps one).")
@click.option("--resume", is_flag=True,
              help="Continue where the training stopped: from --state-dir, or from the checkpoint at --out for a "
                   "trainer that keeps its state there.")
def train(plugin: str, model: str | None, out: str, seed: int, options: tuple[str, ...], algorithm: str | None,
          state_dir: str | None,
          resume: bool) -> None:
    """Train a model's weights as its plugin defines (reproduces shipped checkpoints)."""
    import torch

    from pcrobust.determinism import deterministic_algorithms
    from pcrobust.registry import TrainingRequest
    from pcrobust.shorthand import key_values

    host = _host()
    entry = host.model(plugin, model)
    if entry.train is None:
        raise PcrobustError(f"model {entry.name!r} of plugin {plugin!r} has no training recipe")
    if state_dir is not None and not entry.resumable:
        raise PcrobustError(f"model {entry.name!r} of plugin {plugin!r} cannot keep resumable training state")
    if resume and state_dir is None and entry.resumable:
        raise PcrobustError("--resume needs --state-dir, the folder of the state to continue from")
    state = Path(state_dir) if state_dir is not None else None
    with deterministic_algorithms(), torch.random.fork_rng(devices=[]):  # a trainer's seeding stays inside
        settings = {**key_values(options), **({"algorithm": algorithm} if algorithm is not None else {})}
        path = entry.train(TrainingRequest(Path(out), seed, settings, host.registries.datasets, state, resume))
    click.echo(f"checkpoint written to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (user errors 2, regressions 1, Ctrl-C 130)."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="pcrobust", standalone_mode=False)
    except UserError as exc:
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:  # click's own usage errors, in one line too
        click.echo(f"pcrobust: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("pcrobust: aborted", err=True)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
