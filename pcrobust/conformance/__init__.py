"""The conformance kit: a pytest plugin running pcrobust's generic contract tests over a plugin's entries.

pcrobust installs it through the ``pytest11`` entry point, inactive: it adds tests only for the plugins named by
``--pcrobust-conformance=PLUGIN`` (repeatable) or by the ini key ``pcrobust_conformance = ["PLUGIN"]``. The tests
(:mod:`pcrobust.conformance.checks`) cover every model, attack, dataset, section kind and preset those plugins
register, and appear as ``pcrobust-conformance::test_...[plugin/entry]``.
"""

from __future__ import annotations

from collections.abc import Generator
from types import ModuleType

import pytest

from pcrobust.plugins import BUILTIN_NAME, PluginHost

OPTION = "pcrobust_conformance"
NODE = "pcrobust-conformance"
HOST = pytest.StashKey[PluginHost]()

pytest.register_assert_rewrite("pcrobust.conformance.checks")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pcrobust", "pcrobust conformance kit")
    group.addoption("--pcrobust-conformance", action="append", default=[], dest=OPTION, metavar="PLUGIN",
                    help="run pcrobust's contract tests over everything PLUGIN registers (repeatable)")
    parser.addini(OPTION, type="args", default=[],
                  help="plugins whose entries pcrobust's contract tests cover (as --pcrobust-conformance)")


def enabled_plugins(config: pytest.Config) -> list[str]:
    """The plugin names the kit tests, from the ini key and the command line, in order, once each."""
    return list(dict.fromkeys([*config.getini(OPTION), *config.getoption(OPTION)]))


def pytest_configure(config: pytest.Config) -> None:
    """Load the installed plugins once when the kit is enabled; a name that is not installed is a usage error."""
    if not enabled_plugins(config):
        return
    host = PluginHost.from_environment()
    host.registries  # noqa: B018 - collecting leaves out plugins whose hooks fail, into host.broken
    unknown = [name for name in enabled_plugins(config) if name not in host.info and name not in host.broken]
    if unknown:
        installed = ", ".join(sorted({*host.info, *host.broken} - {BUILTIN_NAME}))
        raise pytest.UsageError(f"pcrobust conformance: plugin {unknown[0]!r} is not installed; installed: {installed}")
    config.stash[HOST] = host


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport,
                                                                         pytest.CollectReport]:
    """Add the kit's tests to the session's collection when plugins are named."""
    report = yield
    if isinstance(collector, pytest.Session) and report.passed and enabled_plugins(collector.config):
        report.result.append(ConformanceModule.from_parent(collector, path=collector.config.rootpath / NODE))
    return report


class ConformanceModule(pytest.Module):
    """The contract tests, collected from :mod:`pcrobust.conformance.checks` wherever the session's root is."""

    def _getobj(self) -> ModuleType:
        from pcrobust.conformance import checks

        return checks
