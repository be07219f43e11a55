"""Seeded percentile bootstrap intervals of a series (``run.interval = "bootstrap"``), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pcrobust.stats import annotate_series, binomial_interval, statistics_block

EVENTS = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 1], [1, 1, 0], [0, 1, 1]],
                  dtype=bool)


def test_bootstrap_intervals_are_seeded_and_hold_the_rate():
    first = annotate_series(EVENTS, True, 0.9, "bootstrap", seed=3)
    assert first == annotate_series(EVENTS, True, 0.9, "bootstrap", seed=3)
    many = np.random.default_rng(0).random((60, 3)) < 0.5
    assert annotate_series(many, True, 0.9, "bootstrap", seed=3)["interval"] != \
        annotate_series(many, True, 0.9, "bootstrap", seed=4)["interval"]
    rates = EVENTS.mean(0)
    for t, rate in enumerate(rates):
        assert first["interval"]["low"][t] <= rate <= first["interval"]["high"][t]
        change = rate - rates[0]
        assert first["vs_t0"]["change_interval"]["low"][t] <= change <= first["vs_t0"]["change_interval"]["high"][t]
    assert first["vs_t0"]["change_interval"]["low"][0] == 0 == first["vs_t0"]["change_interval"]["high"][0]
    assert first["interval"] != annotate_series(EVENTS, True, 0.9, "wilson")["interval"]
    assert first["vs_t0"]["p_value"] == annotate_series(EVENTS, True, 0.9, "wilson")["vs_t0"]["p_value"]
    assert binomial_interval(8, 8, 0.9)[1] == 1.0
    everyone = annotate_series(np.ones((5, 2), dtype=bool), True, 0.9, "bootstrap")
    assert everyone["interval"] == {"low": [1.0, 1.0], "high": [1.0, 1.0]}
    assert statistics_block(0.9, "bootstrap", 3)["bootstrap"]["seed"] == 3


def test_a_run_with_bootstrap_intervals_records_them(cli, tmp_path: Path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[model]\nplugin = "predify"\n[data]\nn = 20\n[run]\ntimesteps = 1\ndevice = "cpu"\n'
                    'interval = "bootstrap"\nseed = 5\n[[sections]]\nkind = "clean"\n')
    code, stdout, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["statistics"]["interval"] == "bootstrap" and results["statistics"]["bootstrap"]["seed"] == 5
    assert "percentile bootstrap" in (tmp_path / "r" / "report.html").read_text()
    assert "only n = 20 images" in (tmp_path / "r" / "report.html").read_text()
