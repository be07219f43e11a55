"""The shipped CNN-F baseline: it holds the default plan, a fresh default run passes its gate, CI runs the gate."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "baselines" / "cnnf-mnist-cnnf.json"


def test_a_fresh_default_run_passes_the_shipped_baseline(cli, tmp_path: Path):
    baseline = json.loads(BASELINE.read_text())
    assert baseline["model"]["name"] == "mnist-cnnf"
    code, plan, _ = cli("plan", "--plugin", "cnnf")
    assert code == 0 and tomllib.loads(plan) == baseline["plan"]
    code, _, err = cli("evaluate", "--plugin", "cnnf", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    code, out, _ = cli("check", str(tmp_path / "r" / "results.json"), "--baseline", str(BASELINE), "--tolerance", "0")
    assert code == 0 and "ok: 28 shared metrics" in out, out
    fresh = json.loads((tmp_path / "r" / "results.json").read_text())
    assert fresh["provenance"]["weights"] == baseline["provenance"]["weights"]
    fresh["sections"][2]["series"][1]["values"][3] += 0.1  # BIM success at ε = 0.2, t = 3, worse by 0.1
    (tmp_path / "worse.json").write_text(json.dumps(fresh))
    code, out, _ = cli("check", str(tmp_path / "worse.json"), "--baseline", str(BASELINE))
    assert code == 1 and "1 of 28 shared metrics regressed" in out, out


def test_ci_gates_the_cnnf_default_run_against_it():
    ci = (REPO / ".ci" / "run").read_text()
    assert "pcrobust evaluate --plugin cnnf --quiet --out pcrobust-results-cnnf" in ci
    assert "pcrobust check pcrobust-results-cnnf/results.json --baseline baselines/cnnf-mnist-cnnf.json" in ci
