"""An output folder holding exactly one run: its plan, its run record, its stored units and its outputs.

``run.json`` (the run record) names the plan's digest, every unit of the plan, the facts assembly needs
(model, dataset, provenance) and the output files last written, so a fresh run can remove an earlier run's
files and ``--resume`` can refuse a folder that holds another plan.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pcrobust.errors import PcrobustError
from pcrobust.files import atomic_write_json, atomic_write_text, read_schema_json
from pcrobust.names import slug

RUN_SCHEMA = "pcrobust.run/1"
RUN_RECORD = "run.json"
PLAN_FILE = "plan.toml"
UNITS_DIR = "units"
LOCK_FILE = ".pcrobust.lock"


def written_by(record: Mapping[str, Any]) -> str | None:
    """The version of pcrobust that wrote a run record."""
    version: str | None = record.get("facts", {}).get("provenance", {}).get("pcrobust")
    return version


class RunFolder:
    """The stored state of one run in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for one process: a second run writing to it at once is refused with one line.

        The lock is an ``flock`` on a file in the folder, so the system releases it when the process ends,
        however it ends. A folder this call created is removed again if nothing but the lock was written."""
        if self.path.exists() and not self.path.is_dir():
            raise PcrobustError(f"output folder {self.path} is a file")
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_FILE
        with open(lock, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PcrobustError(f"another pcrobust process is writing to {self.path}; wait for it, or use "
                                    "another --out") from None
            try:
                yield
            finally:
                if created and [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
                    lock.unlink()
                    self.path.rmdir()
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record(self) -> dict[str, Any] | None:
        """The run record, or ``None`` when the folder holds no run."""
        return read_schema_json(self.path / RUN_RECORD, RUN_SCHEMA, "record")

    def prepare(self, digest: str, resume: bool, version: str) -> bool:
        """Make the folder ready for the plan with ``digest``; returns whether stored units are reused.

        Without ``resume`` an earlier run's files are removed (files pcrobust did not write are left alone);
        with it, a folder holding another plan, or written by another ``version`` of pcrobust (whose stored
        units may lack what this one assembles), is refused."""
        if self.path.exists() and not self.path.is_dir():
            raise PcrobustError(f"output folder {self.path} is a file")
        record = self.record()
        if resume and record is not None:
            if record["plan_digest"] != digest:
                raise PcrobustError(f"{self.path} holds another plan (digest {record['plan_digest'][:12]}, this "
                                    f"plan {digest[:12]}); resume needs the same plan, or use another --out")
            if written_by(record) != version:
                raise PcrobustError(f"{self.path} was written by pcrobust {written_by(record)}, this is {version}; "
                                    "resume needs the same version: run without --resume, or use another --out")
            for leftover in self.path.rglob(".*.tmp"):  # half-written files of a killed process
                leftover.unlink()
            return True
        self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        return False

    def clear(self) -> None:
        """Remove the files a run wrote here: its outputs, units, plan and record (nothing else)."""
        record = self.record()
        if record is None:
            return
        self.remove_outputs(record.get("outputs", []))
        shutil.rmtree(self.path / UNITS_DIR, ignore_errors=True)
        for name in (PLAN_FILE, RUN_RECORD):
            (self.path / name).unlink(missing_ok=True)

    def write_record(self, record: Mapping[str, Any], plan_toml: str) -> None:
        atomic_write_text(self.path / PLAN_FILE, plan_toml)
        atomic_write_json(self.path / RUN_RECORD, {"schema": RUN_SCHEMA, **record})

    def unit_file(self, section: str, key: str) -> Path:
        return self.path / UNITS_DIR / slug(section) / f"{slug(key)}.json"

    def load_unit(self, section: str, key: str, digest: str) -> dict[str, Any] | None:
        """A stored unit's outcome, or ``None`` if it was never finished."""
        file = self.unit_file(section, key)
        if not file.is_file():
            return None
        stored = json.loads(file.read_text())
        if stored.get("plan_digest") != digest or stored.get("unit") != key:
            raise PcrobustError(f"{file} belongs to another plan or unit")
        outcome: dict[str, Any] = stored["outcome"]
        return outcome

    def save_unit(self, section: str, key: str, digest: str, outcome: Mapping[str, Any]) -> None:
        atomic_write_json(self.unit_file(section, key),
                          {"section": section, "unit": key, "plan_digest": digest, "outcome": outcome}, indent=None)

    def remove_outputs(self, names: Iterable[str]) -> None:
        for name in names:
            (self.path / name).unlink(missing_ok=True)

    def set_outputs(self, names: list[str]) -> None:
        """Record the output files now in the folder, removing those of the last report not written again."""
        record = self.record()
        if record is None:
            raise PcrobustError(f"{self.path} holds no run record")
        self.remove_outputs(set(record.get("outputs", [])) - set(names))
        record["outputs"] = sorted(names)
        atomic_write_json(self.path / RUN_RECORD, record)
