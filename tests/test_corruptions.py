"""ImageNet-C corruptions per timestep: the CE/mCE formulas, seeding per image, bad input, and a CLI run."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pcrobust.corrupt import ALL, STANDARD, corrupt_image, corrupt_images
from pcrobust.corruption_metrics import ALEXNET_CLEAN, ALEXNET_ERRORS, alexnet_applies, corruption_summary, measures
from pcrobust.datasets import LabeledImages
from pcrobust.kinds.corruption import Corruption, CorruptionOptions, image_seeds
from pcrobust.models import evaluation_mode
from pcrobust.run.context import RunContext
from pcrobust.sections import Section
from pcrobust.specs import RunSpec

# errors[corruption, severity, t] for gaussian_noise and fog at severities 1, 2 and timesteps 0, 1
ERRORS = np.array([[[0.2, 0.1], [0.4, 0.3]], [[0.5, 0.5], [0.7, 0.3]]])
CLEAN = np.array([0.1, 0.05])
NAMES = ("gaussian_noise", "fog")


def test_t0_normalised_ce_and_mce_by_hand():
    found = measures(ERRORS, CLEAN, NAMES, (1, 2), alexnet=False)
    # Σ_s E(t) / Σ_s E(0): gaussian 0.6 → 0.4, fog 1.2 → 0.8
    assert found["t0", "ce", "gaussian_noise"] == pytest.approx([1, 2 / 3])
    assert found["t0", "ce", "fog"] == pytest.approx([1, 2 / 3])
    assert found["t0", "mce", ""] == pytest.approx([1, 2 / 3])
    # Σ_s (E(t) − E_clean(t)) / Σ_s (E(0) − E_clean(0)): gaussian 0.3 / 0.4, fog 0.7 / 1.0
    assert found["t0", "relative_ce", "gaussian_noise"] == pytest.approx([1, 0.75])
    assert found["t0", "relative_ce", "fog"] == pytest.approx([1, 0.7])
    assert found["t0", "relative_mce", ""] == pytest.approx([1, 0.725])
    # the Predify paper's curve: mean over corruptions of Σ_s E(t), over its value at t=0: 0.6 / 0.9
    assert found["t0", "mean_error_ratio", ""] == pytest.approx([1, 2 / 3])
    assert not any(key[0] == "alexnet" for key in found)


def test_alexnet_normalised_ce_and_mce_by_hand():
    found = measures(ERRORS, CLEAN, NAMES, (1, 2), alexnet=True)
    gauss, fog = 0.69528 + 0.82542, 0.67474 + 0.76050  # AlexNet's errors at severities 1 and 2
    assert found["alexnet", "ce", "gaussian_noise"] == pytest.approx([0.6 / gauss, 0.4 / gauss])
    assert found["alexnet", "ce", "fog"] == pytest.approx([1.2 / fog, 0.8 / fog])
    assert found["alexnet", "mce", ""] == pytest.approx([(0.6 / gauss + 1.2 / fog) / 2, (0.4 / gauss + 0.8 / fog) / 2])
    g_rel, f_rel = gauss - 2 * ALEXNET_CLEAN, fog - 2 * ALEXNET_CLEAN
    assert found["alexnet", "relative_ce", "gaussian_noise"] == pytest.approx([0.4 / g_rel, 0.3 / g_rel])
    assert found["alexnet", "relative_mce", ""] == pytest.approx([(0.4 / g_rel + 1.0 / f_rel) / 2,
                                                                  (0.3 / g_rel + 0.7 / f_rel) / 2])


def test_alexnet_scores_100_percent_against_itself():
    errors = np.array([[[e] for e in ALEXNET_ERRORS[name]] for name in STANDARD])
    found = measures(errors, np.array([ALEXNET_CLEAN]), STANDARD, (1, 2, 3, 4, 5), alexnet=True)
    assert found["alexnet", "mce", ""] == pytest.approx([1.0])
    assert found["alexnet", "relative_mce", ""] == pytest.approx([1.0])


def test_mce_is_over_the_standard_corruptions_and_extras_need_all_severities():
    errors = np.array([[[0.5, 0.4]], [[0.8, 0.2]]])
    found = measures(errors, CLEAN, ("gaussian_noise", "speckle_noise"), (3,), alexnet=True)
    assert found["t0", "mce", ""] == pytest.approx([1, 0.8])  # gaussian_noise alone
    assert ("alexnet", "ce", "speckle_noise") not in found  # its AlexNet error is known for all 5 severities only
    assert ("alexnet", "ce", "gaussian_noise") in found


def test_undefined_ratios_are_null_and_alexnet_needs_imagenet_images():
    summary = corruption_summary(np.zeros((4, 1, 1, 2), dtype=bool), np.zeros((4, 2), dtype=bool),
                                 ("fog",), (1,), False, 0.95, 0)
    assert summary["normalised"]["t0"]["ce"]["fog"]["values"] == [None, None]  # no errors at t=0
    json.dumps(summary, allow_nan=False)
    assert alexnet_applies([3, 224, 224], 1000)
    assert not alexnet_applies([1, 28, 28], 10) and not alexnet_applies([3, 32, 32], 1000)


def test_relative_ce_over_a_zero_or_negative_degradation_is_undefined_never_absurd():
    # 10 images, t=0: clean wrong on 2, severity 1 wrong on 3, severity 2 on 1: Σ_s (E_s(0) − E_clean(0)) is 0,
    # but (0.3 − 0.2) + (0.1 − 0.2) rounds to −2.8e-17, which gave a relative CE of −2.5e16 and bounds of ±1e16
    wrong, clean = np.zeros((10, 1, 2, 2), dtype=bool), np.zeros((10, 2), dtype=bool)
    clean[:2] = True
    wrong[:3, 0, 0, 0], wrong[9:, 0, 1, 0], wrong[:6, 0, 0, 1], wrong[:5, 0, 1, 1] = True, True, True, True
    summary = corruption_summary(wrong, clean, ("fog",), (1, 2), False, 0.95, 0)
    for entry in (summary["normalised"]["t0"]["relative_ce"]["fog"], summary["normalised"]["t0"]["relative_mce"]):
        assert entry["values"] == [None, None]
        assert entry["interval"] == {"low": [None, None], "high": [None, None]}  # 37 % of resamples defined
        assert entry["defined_resamples"] == pytest.approx([0.37, 0.37])
    assert summary["normalised"]["t0"]["ce"]["fog"]["values"] == pytest.approx([1, 11 / 4])
    ce = summary["normalised"]["t0"]["ce"]["fog"]  # Σ_s E_s(0) = 0 only in the 1 % of resamples that miss all 4
    assert ce["defined_resamples"] == pytest.approx([0.99, 0.99]) and ce["interval"]["low"] == pytest.approx([1, 1.25])
    json.dumps(summary, allow_nan=False)


def test_relative_ce_interval_comes_from_defined_resamples_when_most_are():
    # 40 images, t=0: clean wrong on 1, corrupted on 6 others (2.6 % of resamples draw no more corrupted errors)
    wrong, clean = np.zeros((40, 1, 1, 2), dtype=bool), np.zeros((40, 2), dtype=bool)
    clean[:1] = True
    wrong[1:7, 0, 0, 0], wrong[1:4, 0, 0, 1] = True, True
    entry = corruption_summary(wrong, clean, ("fog",), (1,), False, 0.95, 0)["normalised"]["t0"]["relative_ce"]["fog"]
    assert entry["values"] == pytest.approx([1, 2 / 5])
    assert 0.95 <= entry["defined_resamples"][1] < 1
    low, high = entry["interval"]["low"][1], entry["interval"]["high"][1]
    assert -1 <= low < 2 / 5 < high <= 1  # a resample's degradation over its own t=0 one: never beyond ±1 here


def test_summary_errors_are_per_image_means():
    wrong = np.array([[[[1, 0]]], [[[1, 1]]], [[[0, 0]]], [[[1, 0]]]], dtype=bool)  # 4 images, 1 × 1, T = 1
    clean = np.array([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=bool)
    summary = corruption_summary(wrong, clean, ("fog",), (2,), False, 0.9, 3, resamples=200)
    assert summary["error"] == {"fog": {"2": [0.75, 0.25]}}
    assert summary["clean_error"] == [0.25, 0.0]
    assert summary["normalised"]["t0"]["ce"]["fog"]["values"] == pytest.approx([1, 1 / 3])
    assert summary == corruption_summary(wrong, clean, ("fog",), (2,), False, 0.9, 3, resamples=200)


@pytest.mark.parametrize("name", ["impulse_noise", "glass_blur", "gaussian_noise"])
def test_random_corruptions_are_seeded_and_leave_numpy_state_alone(name):
    image = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    before = np.random.get_state()[1].copy()
    first, again, other = (corrupt_image(image, name, 3, seed) for seed in (11, 11, 12))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert np.array_equal(np.random.get_state()[1], before)


def test_every_corruption_keeps_shape_for_grey_and_colour_images():
    grey = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    colour = torch.rand(3, 33, 40, generator=torch.Generator().manual_seed(2))
    for name in ALL:
        for image in (grey, colour):
            out = corrupt_image(image, name, 5, 0)
            assert out.shape == image.shape and out.dtype == image.dtype
            assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_an_image_is_corrupted_alike_whatever_else_is_in_its_batch():
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    together = corrupt_images(images[[1, 3]], "shot_noise", 4, image_seeds(0, "shot_noise", 4, [1, 3]))
    alone = corrupt_images(images[[3]], "shot_noise", 4, image_seeds(0, "shot_noise", 4, [3]))
    assert torch.equal(together[1], alone[0])
    assert image_seeds(0, "shot_noise", 4, [3]) != image_seeds(0, "shot_noise", 5, [3])
    assert image_seeds(0, "shot_noise", 4, [3]) != image_seeds(0, "speckle_noise", 4, [3])


def _run_section(model, options: CorruptionOptions, images_per_unit: int, batch_size: int) -> dict:
    data = LabeledImages("toy", "test", torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4)),
                         torch.randint(0, 5, (10,), generator=torch.Generator().manual_seed(5)), 5, "toy", "-")
    run = RunSpec(images_per_unit=images_per_unit, batch_size=batch_size)
    context = RunContext(run, None, model, data, torch.device("cpu"), 2,  # type: ignore[arg-type]
                         torch.randperm(10, generator=torch.Generator().manual_seed(6)), progress=False)
    kind = Corruption()
    section = Section(1, "corruption", kind, options)
    with evaluation_mode(model):
        outcomes = [(unit, kind.run_unit(section, unit, context)) for unit in kind.units(section, context)]
    result = kind.assemble(section, outcomes, 2)
    return {"fields": result.fields, "series": [(s.label, list(s.indices), s.events.tolist()) for s in result.series]}


def test_results_do_not_depend_on_batch_size_or_images_per_unit(tiny):
    options = CorruptionOptions(corruptions=("impulse_noise", "fog"), severities=(2, 5), n=9)
    chunked = _run_section(tiny, options, images_per_unit=4, batch_size=3)
    whole = _run_section(tiny, options, images_per_unit=500, batch_size=500)
    assert chunked == whole
    assert len(whole["series"]) == 4 and len(whole["series"][0][1]) == 9
    assert whole["fields"]["metrics"]["mce_over"] == ["impulse_noise", "fog"]


def test_jobs_started_ahead_are_forgotten_with_their_run(tiny):
    data = LabeledImages("toy", "test", torch.rand(6, 1, 8, 8), torch.zeros(6, dtype=torch.long), 5, "toy", "-")
    options = CorruptionOptions(corruptions=("impulse_noise",), severities=(2,), workers=1)
    context = RunContext(RunSpec(images_per_unit=3, batch_size=3), None, tiny, data,  # type: ignore[arg-type]
                         torch.device("cpu"), 1, torch.arange(6), progress=False)
    kind = Corruption()
    section = Section(1, "corruption", kind, options)
    first = kind.units(section, context)[0]
    with evaluation_mode(tiny):
        kind.run_unit(section, first, context)  # starts the second unit's images ahead
    assert list(kind._ahead) == [id(context)]
    del context
    gc.collect()
    assert kind._ahead == {}


@pytest.mark.parametrize(("args", "message"), [
    (("--corruptions", "fog", "--severities", "6"), "severities[0]: input should be less than or equal to 5, got 6"),
    (("--corruptions", "fog", "--severities", "0-2"), "severities[0]: input should be greater than or equal to 1"),
    (("--corruptions", "fog", "--severities", "x"), "--severities takes integers and ranges"),
    (("--corruptions", "fog,smoke"), "unknown corruption 'smoke'; available: all, gaussian_noise"),
    (("--severities", "1-3"), "--severities needs --corruptions"),
])
def test_bad_corruption_input_is_one_line_and_exit_2(cli, tmp_path: Path, args, message):
    code, _, err = cli("evaluate", "--plugin", "predify", *args, "--n-clean", "5", "--quiet",
                       "--out", str(tmp_path / "r"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_cli_runs_two_corruptions_at_two_severities(cli, tmp_path: Path):
    out = tmp_path / "run"
    code, stdout, err = cli("evaluate", "--plugin", "predify", "--corruptions", "contrast,impulse_noise",
                            "--severities", "1,5", "--n-clean", "30", "--timesteps", "2", "--attack", "none",
                            "--noise-sigmas", "", "--quiet", "--device", "cpu", "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    section = next(s for s in results["sections"] if s["kind"] == "corruption")
    assert section["corruptions"] == ["contrast", "impulse_noise"] and section["severities"] == [1, 5]
    assert [s["label"] for s in section["series"]] == ["contrast s1", "contrast s5", "impulse_noise s1",
                                                       "impulse_noise s5"]
    assert section["library"]["name"] == "imagecorruptions-imaug" and "grayscale" in section["handling"]
    assert section["alexnet_normalisation"].startswith("not applied")
    metrics = section["metrics"]
    assert set(metrics["normalised"]) == {"t0"}
    for measure in ("mce", "relative_mce", "mean_error_ratio"):
        block = metrics["normalised"]["t0"][measure]
        assert len(block["values"]) == 3 and set(block["interval"]) == {"low", "high"}
    assert set(metrics["normalised"]["t0"]["ce"]) == {"contrast", "impulse_noise"}
    accuracy = {s["label"]: s["values"] for s in section["series"]}
    assert metrics["error"]["contrast"]["5"] == pytest.approx([1 - v for v in accuracy["contrast s5"]])
    assert "mCE (normalised by t=0)" in stdout
    report = (out / "report.html").read_text()
    assert "Corruption error" in report and "ImageNet-C corruptions" in report
    assert (out / "corruption_ce-t0.png").is_file() and not (out / "corruption_ce-alexnet.png").exists()


def _smooth_image() -> torch.Tensor:
    rows, columns = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    return torch.stack([rows, columns, (rows + columns) / 2]) * 0.8 + 0.1


def test_cifar_strength_is_milder_than_imagenet_and_seeded():
    from pcrobust.corrupt_cifar import CIFAR_TABLE

    image = _smooth_image()
    before = np.random.get_state()[1].copy()
    for name in CIFAR_TABLE:
        cifar = corrupt_image(image, name, 5, 7, "cifar")
        assert torch.equal(cifar, corrupt_image(image, name, 5, 7, "cifar")), name
        imagenet = corrupt_image(image, name, 5, 7)
        assert float((cifar - image).abs().mean()) < float((imagenet - image).abs().mean()), name
    assert not torch.equal(corrupt_image(image, "shot_noise", 2, 1, "cifar"),
                           corrupt_image(image, "shot_noise", 2, 2, "cifar"))
    assert np.array_equal(np.random.get_state()[1], before)


def test_cifar_strength_refuses_what_it_does_not_offer(cli, tmp_path: Path):
    code, _, err = cli("evaluate", "--plugin", "predify", "--corruptions", "all", "--corruption-strength", "cifar",
                       "--n-clean", "5", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "strength 'cifar' does not offer snow, frost, elastic_transform, spatter" in err
    code, _, err = cli("evaluate", "--plugin", "predify", "--corruptions", "fog", "--corruption-strength", "strong",
                       "--n-clean", "5", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and "strength" in err and len(err.strip().splitlines()) == 1


def test_cifar_strength_is_recorded(tiny):
    options = CorruptionOptions(corruptions=("contrast",), severities=(1,), strength="cifar", n=4)
    fields = _run_section(tiny, options, images_per_unit=500, batch_size=500)["fields"]
    assert fields["strength"] == "cifar" and fields["strength_parameters"] == {"contrast": [0.75, 0.5, 0.4, 0.3, 0.15]}
    assert "CIFAR-10-C" in fields["strength_table"]
