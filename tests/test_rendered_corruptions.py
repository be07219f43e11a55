"""Pre-rendered corruptions from disk (ImageNet-C folders, CIFAR-10-C arrays), corruption workers, and spatter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pcrobust.corrupt import corrupt_array, spatter_without_liquid, to_library_array
from pcrobust.datasets import LabeledImages
from pcrobust.html_report import SCHEMA2, warnings
from pcrobust.kinds.corruption import Corruption, CorruptionOptions, image_seeds
from pcrobust.models import evaluation_mode
from pcrobust.run.context import RunContext
from pcrobust.sections import Section
from pcrobust.specs import RunSpec
from pcrobust_datasets.mnist import load_mnist_5k

TOY = LabeledImages("toy", "test", torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4)),
                    torch.randint(0, 5, (10,), generator=torch.Generator().manual_seed(5)), 5, "toy", "-")


def run_section(model, options: CorruptionOptions, seed: int = 0) -> dict:
    """The section run unit by unit on the toy images, as the engine runs it."""
    context = RunContext(RunSpec(images_per_unit=4, batch_size=3, seed=seed), None, model,  # type: ignore[arg-type]
                         TOY, torch.device("cpu"), 2, torch.randperm(10, generator=torch.Generator().manual_seed(6)),
                         progress=False)
    kind = Corruption()
    section = Section(1, "corruption", kind, options)
    kind.check(options, context)
    with evaluation_mode(model):
        outcomes = [(unit, kind.run_unit(section, unit, context)) for unit in kind.units(section, context)]
    result = kind.assemble(section, outcomes, 2)
    return {"fields": result.fields, "series": [(s.label, list(s.indices), s.events.tolist()) for s in result.series]}


def library_rows(name: str, severity: int, seed: int) -> np.ndarray:
    """What on-the-fly corruption gives the toy images, as stored uint8 RGB rows of their own 8 × 8 size."""
    rows = []
    for index, image in enumerate(TOY.images):
        array, _ = corrupt_array(to_library_array(image), name, severity, image_seeds(seed, name, severity, [index])[0])
        top = (array.shape[0] - 8) // 2
        rows.append(array[top:top + 8, top:top + 8])
    return np.stack(rows)


def test_stored_arrays_score_as_the_same_corruptions_on_the_fly(tiny, tmp_path: Path):
    for name in ("contrast", "shot_noise"):
        np.save(tmp_path / f"{name}.npy", np.concatenate([library_rows(name, s, 0) for s in range(1, 6)]))
    np.save(tmp_path / "labels.npy", np.tile(TOY.labels.numpy(), 5))
    names, severities = ("contrast", "shot_noise"), (2, 5)
    stored = run_section(tiny, CorruptionOptions(corruptions=names, severities=severities, path=str(tmp_path)))
    live = run_section(tiny, CorruptionOptions(corruptions=names, severities=severities, workers=0))
    assert stored["series"] == live["series"]
    assert stored["fields"]["metrics"] == live["fields"]["metrics"]
    assert stored["fields"]["library"]["name"] == "pre-rendered"
    assert stored["fields"]["library"]["path"] == str(tmp_path)


def test_workers_give_the_results_of_one_process(tiny):
    options = dict(corruptions=("impulse_noise", "spatter"), severities=(1, 4))
    alone = run_section(tiny, CorruptionOptions(**options, workers=0))
    pooled = run_section(tiny, CorruptionOptions(**options, workers=2))
    assert pooled == alone


def _nan_seed(size: int = 32) -> int:
    """A seed for which the library's spatter (severity 1) draws no liquid at ``size`` px."""
    from imagecorruptions.corruptions import spatter

    image = np.full((size, size, 3), 128, np.uint8)
    for seed in range(500):
        np.random.seed(seed)
        with np.errstate(invalid="ignore"):
            if np.isnan(np.asarray(spatter(Image.fromarray(image), 1))).any():
                return seed
    raise AssertionError("no seed without liquid")


def test_spatter_without_liquid_is_the_image_not_the_library_black():
    from imagecorruptions import corrupt

    image = (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)
    seed = _nan_seed()
    state = np.random.get_state()
    with np.errstate(invalid="ignore"):
        out, fixed = corrupt_array(image, "spatter", 1, seed)
        np.random.seed(seed)
        library = corrupt(image, 1, "spatter")
    np.random.set_state(state)
    assert fixed and np.array_equal(out, spatter_without_liquid(image))
    assert np.abs(out.astype(int) - image).max() <= 1 and library.max() == 0  # the library's output is black
    _, clean_fixed = corrupt_array(image, "spatter", 1, seed + 1 if seed + 1 != _nan_seed() else seed + 2)
    assert not clean_fixed


def test_spatter_fixes_are_recorded_with_a_warning(tiny, capsys):
    run_seed = next(s for s in range(200)
                    if any(corrupt_array(to_library_array(TOY.images[i]), "spatter", 1,
                                         image_seeds(s, "spatter", 1, [i])[0])[1] for i in range(10)))
    fields = run_section(tiny, CorruptionOptions(corruptions=("spatter",), severities=(1,), workers=0),
                         seed=run_seed)["fields"]
    assert fields["fixed_outputs"]["spatter s1"] and "NaN" in fields["warnings"][0]
    assert "pcrobust: warning: spatter severity 1" in capsys.readouterr().err
    assert "spatter" in fields["handling"]
    entry = {"title": "corruptions", "warnings": fields["warnings"], "series": []}
    assert any("returned NaN" in line for line in warnings({"schema": SCHEMA2, "timesteps": [0], "sections": [entry]}))


# --- end to end: the CLI on the shipped digit model ----------------------------------------------------------

DIGITS = 10


def write_digits(root: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    for number, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).save(folder / f"{number:03d}.png")


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_mnist_5k("test")
    return data.images[::50][:DIGITS], data.labels[::50][:DIGITS]


@pytest.fixture
def folders(tmp_path: Path, digits) -> tuple[Path, Path]:
    """A clean digit folder and an ImageNet-C style tree whose fog images are the clean ones, inverted at s5."""
    images, labels = digits
    clean, rendered = tmp_path / "clean", tmp_path / "rendered"
    write_digits(clean, images, labels)
    write_digits(rendered / "fog" / "1", images, labels)
    write_digits(rendered / "fog" / "5", 1 - images, labels)
    return clean, rendered


def evaluate(cli, out: Path, *args: str) -> tuple[int, str]:
    code, _, err = cli("evaluate", "--plugin", "predify", "--corruptions", "fog", "--timesteps", "1",
                       "--attack", "none", "--noise-sigmas", "", "--quiet", "--device", "cpu", "--out", str(out),
                       *args)
    return code, err


def test_cli_scores_imagenet_c_folders_per_timestep(cli, tmp_path: Path, folders):
    clean, rendered = folders
    code, err = evaluate(cli, tmp_path / "run", "--data", str(clean), "--severities", "1,5",
                         "--corrupted-data", str(rendered))
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    section = next(s for s in results["sections"] if s["kind"] == "corruption")
    metrics = section["metrics"]
    assert metrics["error"]["fog"]["1"] == metrics["clean_error"]  # severity 1 holds the clean digits
    assert metrics["error"]["fog"]["5"][0] > metrics["clean_error"][0]  # inverted digits are misread
    assert section["library"]["name"] == "pre-rendered" and len(section["series"][0]["values"]) == 2
    assert {"values", "interval"} <= set(metrics["normalised"]["t0"]["mce"])


def _arrays(root: Path, count: int, rows: int | None = None, labels: np.ndarray | None = None) -> Path:
    root.mkdir(exist_ok=True)
    np.save(root / "fog.npy", np.zeros((rows or 5 * count, 28, 28), np.uint8))
    np.save(root / "labels.npy", load_mnist_5k("test").labels.numpy() if labels is None else labels)
    return root


@pytest.mark.parametrize(("case", "message"), [
    ("no-severity", "has no folder fog/5 (corruption 'fog', severity 5 is missing)"),
    ("no-corruption", "has no folder fog/1 (corruption 'fog', severity 1 is missing)"),
    ("unreadable", "cannot be read (not an image, or truncated)"),
    ("label-mismatch", "fog/1: labels do not match the dataset's (image 1: 1, the dataset has 0)"),
    ("missing-array", "has no fog.npy (corruption 'fog' is missing)"),
    ("wrong-shape", "expected uint8 [5000, 28, 28, 1]"),
    ("array-labels", "labels.npy: labels do not match the dataset's (image 100: 0, the dataset has 1)"),
    ("not-npy", "cannot be read as a .npy array"),
    ("no-folder", "does not exist or is not a folder"),
])
def test_bad_corrupted_data_is_one_line_and_exit_2(cli, tmp_path: Path, folders, case, message):
    clean, rendered = folders
    args = ["--data", str(clean)]
    if case == "no-severity":
        (rendered / "fog" / "5").rename(tmp_path / "away")
    elif case == "no-corruption":
        rendered = tmp_path / "empty"
        rendered.mkdir()
    elif case == "unreadable":
        next((rendered / "fog" / "1").rglob("*.png")).write_bytes(b"not a png")
    elif case == "label-mismatch":
        one, other = sorted((rendered / "fog" / "1").iterdir())[:2]
        moved = next(one.iterdir())
        moved.rename(other / moved.name)  # one digit filed under another class
    elif case == "no-folder":
        rendered = tmp_path / "nowhere"
    else:
        args = ["--n-clean", "5"]
        rendered = _arrays(tmp_path / "arrays", 1000)
        if case == "missing-array":
            (rendered / "fog.npy").unlink()
        elif case == "wrong-shape":
            _arrays(rendered, 1000, rows=4000)
        elif case == "array-labels":
            _arrays(rendered, 1000, labels=np.zeros(1000, np.int64))
        elif case == "not-npy":
            (rendered / "fog.npy").write_bytes(b"garbage")
    code, err = evaluate(cli, tmp_path / "run", *args, "--severities", "1,5", "--corrupted-data", str(rendered))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_corruption_flags_need_corruptions(cli, tmp_path: Path):
    for flag, value in (("--corrupted-data", str(tmp_path)), ("--corruption-workers", "2")):
        code, _, err = cli("plan", "--plugin", "predify", flag, value)
        assert code == 2 and err.strip() == f"pcrobust: error: {flag} needs --corruptions (names, or all)"
    code, out, err = cli("plan", "--plugin", "predify", "--corruptions", "fog", "--corruption-workers", "0",
                         "--corrupted-data", str(tmp_path))
    assert code == 0, err
    assert f'path = "{tmp_path}"' in out and "workers = 0" in out
