"""Executing a plan's units: skip stored ones, keep a shard's share, store each outcome as it finishes."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import click
from tqdm import tqdm

from pcrobust.errors import PcrobustError
from pcrobust.run.context import RunContext
from pcrobust.run.store import RunFolder
from pcrobust.sections import Section, Unit


class Interrupted(Exception):
    """Ctrl-C arrived; the run stopped after the unit in progress, whose outcome is stored."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"interrupted: {done} of {total} units stored; continue with --resume")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): every ``count``-th unit of the plan, starting at ``index``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            raise PcrobustError(f"--shard takes i/n (e.g. 1/2), got {text!r}") from None
        if not sep or not 1 <= shard.index <= shard.count:
            raise PcrobustError(f"--shard takes i/n with 1 ≤ i ≤ n, got {text!r}")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def keeps(self, position: int) -> bool:
        return position % self.count == self.index - 1


def plan_units(sections: Sequence[Section], context: RunContext) -> list[tuple[Section, Unit]]:
    """Every unit of the plan's sections, in plan order (deterministic: the same in every process)."""
    return [(section, unit) for section in sections
            for unit in section.kind.units(section, context)]


@contextmanager
def stop_after_current_unit() -> Iterator[threading.Event]:
    """While active, a first Ctrl-C asks the loop to stop after the current unit (a second one stops at once);
    the previous handler is restored on exit. Outside the main thread nothing is installed."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        click.echo("stopping after the current unit (Ctrl-C again to stop now)", err=True)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(context: RunContext, folder: RunFolder, units: list[tuple[Section, Unit]], digest: str,
            shard: Shard | None = None) -> int:
    """Run the units this process owns that are not stored yet; returns how many ran."""
    mine = [(section, unit) for position, (section, unit) in enumerate(units) if shard is None or shard.keeps(position)]
    todo = [(section, unit) for section, unit in mine if folder.load_unit(section.id, unit.key, digest) is None]
    done = len(mine) - len(todo)
    with stop_after_current_unit() as stop:
        for section, unit in tqdm(todo, desc="units", disable=not context.progress):
            outcome = section.kind.run_unit(section, unit, context)
            folder.save_unit(section.id, unit.key, digest, outcome)
            done += 1
            if stop.is_set() and done < len(mine):
                raise Interrupted(done, len(mine))
    return len(todo)
