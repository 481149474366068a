"""`defiagent report --html` opened in a real headless browser: a page a person can read.

Needs Debian's chromium (scripts/bootstrap installs it). Missing, the test fails: it
never skips, so "the report renders" is not silently left unchecked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from defiagent.reporting import AUDIT_FILE

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "chromium is not installed: run scripts/bootstrap (it installs Debian's chromium "
        "for this test), or `apt-get install chromium`"
    )


def _browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            *extra,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def page(day_template, tmp_path_factory) -> Path:
    """The real command, as a person runs it (once for this module; it only reads the log)."""
    state_dir, _ = day_template
    out = tmp_path_factory.mktemp("html") / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "defiagent.cli.app",
            "report",
            "--state-dir",
            str(state_dir),
            "--html",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (state_dir / AUDIT_FILE).is_file()
    return out


def test_the_rendered_dom(page, tmp_path, day_template):
    _, exp = day_template
    done = _browse(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<title>Behaviour report — 0x1111111111111111111111111111111111111111</title>" in dom
    assert dom.count('class="trade-row"') == exp.trades
    assert "swap-exact-in" in dom
    for rule in exp.refusals_by_rule:
        assert f'<tr class="refusal-rule"><td>{rule}</td>' in dom
    assert "outflow 5000.00 above the cap of 2000.00" in dom
    # the hostile reason is text in the DOM, not an element
    assert '&lt;script&gt;alert("pwned")&lt;/script&gt;' in dom
    assert "<script>alert" not in dom
    assert dom.count("<svg") == 4
    assert 'id="chart-value"' in dom
    assert "Portfolio value and PnL" in dom


def test_the_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "report.png"
    done = _browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert done.returncode == 0, done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 200, f"only {len(colours)} colours: the page looks blank"
    most, _ = max(colours)
    assert most / (1280 * 2000) < 0.8, "one colour covers most of the page"
    # the charts drew something: the value line's blue and the refusals' red are there
    present = {c for _, c in colours}
    assert (37, 99, 235) in present
    assert (239, 68, 68) in present
