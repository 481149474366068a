"""The real Ledger Ethereum app, emulated by Speculos, for tests and the demo.

Speculos 0.9.7 (PyPI; its own venv `.venv-speculos`, made by scripts/bootstrap, because it
pins Flask < 3 and jsonschema < 4.18) runs the Nano X build of the Ethereum app 1.9.17
(`tests/signing/fixtures/ledger/ethereum_nanox.elf`, from LedgerHQ/app-ethereum) under
Debian's `qemu-user-static`. It serves APDUs in ledgerblue's TCP framing, so the agent's
production transport (ledgereth -> ledgerblue, `LEDGER_PROXY_ADDRESS`/`LEDGER_PROXY_PORT`)
talks to it unchanged, and a REST API to press the buttons and read the screen.

`Speculos` starts it on free loopback ports with a seed given by the caller, waits until the
app shows its home screen, and stops it. `AutoApprover` is the person at the device: a
thread that reads the screen and walks each review to its Accept (or Reject) screen.

Two things differ from plain `speculos ...` on the command line, both in a small wrapper:
Speculos 0.9.7 binds its ports on every interface (no option for it), the wrapper binds
them on 127.0.0.1 only; and the seed goes through the environment, not argv, so `ps` does
not show it (it is a throwaway test seed, but that is no reason to print it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import requests

from defiagent.chain.process import die_with_parent_preexec
from defiagent.errors import InfraError, ToolMissing

if TYPE_CHECKING:
    from defiagent.signing.ledger import Dongle

MODEL = "nanox"
SDK = "2.0.2"
APP_VERSION = (1, 9, 17)
_ROOT = Path(__file__).resolve().parents[3]
ELF_ENV = "DEFIAGENT_LEDGER_ELF"
PYTHON_ENV = "DEFIAGENT_SPECULOS_PYTHON"
_SEED_ENV = "DEFIAGENT_SPECULOS_SEED"

# Runs in Speculos's own interpreter: loopback-only sockets, the seed from the environment.
_WRAPPER = f"""
import os, socket, sys
_bind = socket.socket.bind
def _loopback_bind(self, address):
    if isinstance(address, tuple) and address and address[0] in ("0.0.0.0", ""):
        address = ("127.0.0.1",) + tuple(address[1:])
    return _bind(self, address)
socket.socket.bind = _loopback_bind
sys.argv = ["speculos"] + sys.argv[1:] + ["--seed", os.environ.pop({_SEED_ENV!r})]
from speculos.main import main
sys.exit(main())
"""

HOME = ("Application", "is ready")
# Screens of the app's own menus (home, settings): never a request waiting for a decision.
_MENU_FIRST = {"Application", "Version", "Settings", "Quit", "Blind signing", "Debug data"}
_MENU_FIRST |= {"Nonce", "Back"}
_ACCEPT_FIRST = {"Accept", "Approve", "Sign"}
_REJECT_FIRST = {"Reject", "Cancel"}
BLIND_SIGNING_DISABLED = "Blind signing must be"  # the app's error screen for contract data


def shows_blind_signing_disabled(lines: list[str]) -> bool:
    """The app's error screen for contract data with blind signing off. It is drawn over
    the home screen without clearing it, so its text can follow the home screen's."""
    return BLIND_SIGNING_DISABLED in " ".join(lines)


def default_elf() -> Path:
    """The Ethereum app ELF: $DEFIAGENT_LEDGER_ELF, else the copy in the source tree."""
    override = os.environ.get(ELF_ENV)
    return (
        Path(override) if override else _ROOT / "tests/signing/fixtures/ledger/ethereum_nanox.elf"
    )


def default_python() -> Path:
    """Speculos's interpreter: $DEFIAGENT_SPECULOS_PYTHON, else .venv-speculos beside .venv."""
    override = os.environ.get(PYTHON_ENV)
    return Path(override) if override else _ROOT / ".venv-speculos/bin/python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Speculos:
    """One emulated Nano X running the Ethereum app, with the given BIP-39 mnemonic."""

    host = "127.0.0.1"

    def __init__(
        self,
        mnemonic: str,
        *,
        elf: Path | None = None,
        python: Path | None = None,
        log_dir: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.mnemonic = mnemonic
        self.elf = Path(elf) if elf else default_elf()
        self.python = Path(python) if python else default_python()
        self.startup_timeout = startup_timeout
        self._log_dir = Path(log_dir) if log_dir else None
        self.log_path: Path | None = None
        self.apdu_port: int | None = None
        self.api_port: int | None = None
        self.started_in: float | None = None  # seconds from spawn to the home screen
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._local = threading.local()
        # One pair of thumbs: the auto-approver and menu navigation take turns.
        self.buttons = threading.Lock()

    # --- process ---------------------------------------------------------------------

    def _check_installed(self) -> None:
        if not self.python.exists():
            raise ToolMissing(
                f"Speculos is not installed ({self.python} is missing)",
                remedy="run scripts/bootstrap, which installs it into .venv-speculos",
            )
        if not self.elf.exists():
            raise ToolMissing(
                f"the Ledger Ethereum app ELF is missing ({self.elf})",
                remedy=f"set {ELF_ENV} to the ethereum_nanox.elf path",
            )
        if not any(
            (Path(d) / "qemu-arm-static").exists() for d in os.environ.get("PATH", "").split(":")
        ):
            raise ToolMissing(
                "qemu-arm-static is not installed (Speculos runs the app under it)",
                remedy="run scripts/bootstrap, or apt-get install qemu-user-static",
            )

    def argv(self) -> list[str]:
        return [
            str(self.python),
            "-c",
            _WRAPPER,
            "-m",
            MODEL,
            "-k",
            SDK,
            "--display",
            "headless",
            "--apdu-port",
            str(self.apdu_port),
            "--api-port",
            str(self.api_port),
            str(self.elf),
        ]

    def start(self) -> Speculos:
        if self._proc is not None:
            return self
        self._check_installed()
        last_error: InfraError | None = None
        for _ in range(3):  # a probed free port can be taken before Speculos binds it
            self.apdu_port, self.api_port = _free_port(), _free_port()
            began = time.monotonic()
            try:
                self._spawn()
                self._wait_ready()
                self.started_in = time.monotonic() - began
                return self
            except InfraError as exc:
                last_error = exc
                tail = self.log_tail(20)
                self.stop()
                if "Address already in use" not in tail:
                    break
        assert last_error is not None
        raise last_error

    def _spawn(self) -> None:
        log_dir = self._log_dir or Path(tempfile.mkdtemp(prefix="defiagent-speculos-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f"speculos-{self.apdu_port}-", suffix=".log", dir=log_dir
        )
        self.log_path = Path(name)
        self._log_file = os.fdopen(fd, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEFIAGENT_")}
        env[_SEED_ENV] = self.mnemonic
        env["PYTHONUNBUFFERED"] = "1"
        self._proc = subprocess.Popen(
            self.argv(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_preexec(os.getpid()),
            close_fds=True,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise InfraError(f"Speculos exited at start: {self.log_tail(3) or 'no output'}")
            # Our own process's API (not another server on a reused port), then the app's
            # home screen: the app has booted and reads APDUs.
            log = self.log_path.read_text(errors="replace") if self.log_path else ""
            if f"Running on http://127.0.0.1:{self.api_port}" in log:
                with contextlib.suppress(requests.RequestException):
                    if tuple(self.screen()) == HOME:
                        return
            time.sleep(0.05)
        raise InfraError(f"Speculos did not show the app within {self.startup_timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # Its own process group (die_with_parent_preexec): Speculos and its qemu child.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # a qemu left behind in the group
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Speculos:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- transport -------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """What points ledgerblue's TCP transport here (for a child process)."""
        return {"LEDGER_PROXY_ADDRESS": self.host, "LEDGER_PROXY_PORT": str(self.apdu_port)}

    def dongle(self) -> Dongle:
        """A ledgerblue TCP dongle connected to the APDU port (the production transport)."""
        from ledgerblue.commTCP import getDongle

        dongle: Dongle = getDongle(self.host, self.apdu_port)  # ledgerblue's, untyped
        return dongle

    # --- screen and buttons (REST API) -----------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    @property
    def api(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def screen(self) -> list[str]:
        """The text on the screen now, line by line."""
        answer = self._session().get(
            f"{self.api}/events", params={"currentscreenonly": "true"}, timeout=5
        )
        answer.raise_for_status()
        return [event["text"] for event in answer.json()["events"]]

    def press(self, button: Literal["left", "right", "both"]) -> None:
        answer = self._session().post(
            f"{self.api}/button/{button}", json={"action": "press-and-release"}, timeout=5
        )
        answer.raise_for_status()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 10.0) -> list[str]:
        """Poll the screen until `predicate(lines)` holds; the lines."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise InfraError(f"the Ledger screen stayed at {lines!r}")
            time.sleep(0.05)

    def _walk_to(self, first_line: str, limit: int = 8) -> list[str]:
        for _ in range(limit):
            lines = self.screen()
            if lines and lines[0] == first_line:
                return lines
            self.press("right")
        raise InfraError(f"no {first_line!r} screen on the Ledger (at {self.screen()!r})")

    def go_home(self) -> None:
        """Back to the home screen from the home menu or the settings."""
        with self.buttons:
            for _ in range(8):
                lines = self.screen()
                if tuple(lines) == HOME:
                    return
                if lines and (lines[0] == "Back" or shows_blind_signing_disabled(lines)):
                    self.press("both")
                    continue
                self.press("right")
        raise InfraError(f"the Ledger did not come back home (at {self.screen()!r})")

    def set_blind_signing(self, enabled: bool) -> bool:
        """Turn the app's blind-signing setting ("contract data") on or off through its
        settings menu, as a person would; the state shown on the device afterwards."""
        self.go_home()
        with self.buttons:
            self._walk_to("Settings")
            self.press("both")
            lines = self.wait_for(lambda s: bool(s) and s[0] == "Blind signing")
            if (lines[-1] == "Enabled") != enabled:
                self.press("both")
                lines = self.wait_for(lambda s: bool(s) and s[0] == "Blind signing")
            shown = lines[-1] == "Enabled"
            self._walk_to("Back")
            self.press("both")
            self.wait_for(lambda s: tuple(s) == HOME)
        if shown != enabled:
            raise InfraError(f"the Ledger's blind-signing setting shows {lines[-1]!r}")
        return shown

    def quit_app(self) -> None:
        """Choose Quit in the app's menu: the app exits, as when a person closes it."""
        self.go_home()
        with self.buttons:
            self._walk_to("Quit")
            # The app exits at once and Speculos with it: the press may get no answer.
            with contextlib.suppress(requests.RequestException):
                self.press("both")
        deadline = time.monotonic() + 10
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running:
            raise InfraError("the Ethereum app did not quit")


# --- the person at the device ---------------------------------------------------------

Decision = Literal["approve", "reject", "ignore"]


@dataclass
class Review:
    """One request the device showed: each screen's lines, and what the person did."""

    screens: list[list[str]] = field(default_factory=list)
    outcome: str = "pending"

    def text(self) -> str:
        return " | ".join(" ".join(lines) for lines in self.screens)


class AutoApprover:
    """A thread that reads the screen and answers every request the app shows.

    approve: page right through the review, then both buttons on Accept / Approve / Sign.
    reject:  page right to Reject (or Cancel) and press both. ignore: touch nothing.
    The app's "Blind signing must be enabled" error screen is dismissed (both buttons).
    """

    def __init__(self, device: Speculos, decision: Decision = "approve", poll: float = 0.05):
        self.device = device
        self.decision: Decision = decision
        self.poll = poll
        self.reviews: list[Review] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: Review | None = None

    def start(self) -> AutoApprover:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ledger-approver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AutoApprover:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def deciding(self, decision: Decision) -> Iterator[AutoApprover]:
        previous, self.decision = self.decision, decision
        try:
            yield self
        finally:
            self.decision = previous

    @property
    def last(self) -> Review:
        return self.reviews[-1]

    def wait_for(self, predicate: Callable[[Review], bool], timeout: float = 5.0) -> Review:
        """The last review once `predicate(review)` holds (or, after `timeout`, as it is)."""
        deadline = time.monotonic() + timeout
        while not (self.reviews and predicate(self.reviews[-1])):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return self.reviews[-1]

    def settled(self, timeout: float = 5.0) -> Review:
        """The last review once the person has finished with it (the app may answer the
        host a moment before the screen the decision was taken on goes away)."""
        return self.wait_for(lambda review: review.outcome != "pending", timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            if not self.device.running:
                continue
            try:
                self._step()
            except requests.RequestException as exc:  # Speculos stopped under us
                self.errors.append(str(exc))

    def _step(self) -> None:
        decision = self.decision  # as it was when this screen was read
        with self.device.buttons:
            lines = self.device.screen()
            if not lines:
                return
            if shows_blind_signing_disabled(lines):
                self._current = None
                review = Review([lines])
                self.reviews.append(review)
                self.device.press("both")
                self._wait_for_change(lines)
                review.outcome = "blind-signing-disabled"
                return
            if lines[0] in _MENU_FIRST:
                self._current = None
                return
            if self._current is None:
                self._current = Review()
                self.reviews.append(self._current)
            review = self._current
            if not review.screens or review.screens[-1] != lines:
                review.screens.append(lines)
            if decision == "ignore":
                return
            if (decision == "approve" and lines[0] in _ACCEPT_FIRST) or (
                decision == "reject" and lines[0] in _REJECT_FIRST
            ):
                self._current = None
                self.device.press("both")
                self._wait_for_change(lines)
                # Only now: the app has answered, so a test that goes on sees its answer
                # go to the connection that asked.
                review.outcome = "approved" if decision == "approve" else "rejected"
                return
            self.device.press("right")

    def _wait_for_change(self, lines: list[str], timeout: float = 2.0) -> None:
        """After a decision, the screen it was taken on must not count as a new request."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.device.running:
            if self.device.screen() != lines:
                return
            time.sleep(0.02)
