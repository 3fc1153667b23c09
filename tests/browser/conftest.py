"""The browser tests' screenshots, listed at the end of the session (``make test``'s output
says where they are, without ``-s``)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per screenshot the browser tests saved in this session."""
    from tests.browser.test_ui import SAVED

    if SAVED:
        terminalreporter.section("browser screenshots")
        for path in SAVED:
            terminalreporter.write_line(str(path))
