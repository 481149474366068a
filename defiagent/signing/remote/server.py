"""`defiagent signer serve`: the process that owns the key and re-checks every transaction.

It listens on a Unix socket (mode 0600, or a socket systemd made and handed over), and
checks each connection's peer credentials (SO_PEERCRED) against the allowed uids before it
reads a byte. Each transaction is judged by SignerPolicy (the guard's rules on the decoded
transaction, with the signer's own allowlist, RPC, limits, spend ledger and kill switch);
only then does the backend (keystore, KMS or Ledger, the agent's own backends) sign it.
Every request, signature and refusal goes to the signer's own hash-chained audit log;
refusals count in Prometheus metrics and raise alerts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from defiagent.agent.allowlist_source import load_allowlist, verify_on_chain
from defiagent.errors import ConfigError, DefiagentError, InfraError, Refused
from defiagent.monitoring.alerts import AlertDispatcher, build_alerts
from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.interfaces import Alert, AlertKind, AlertSeverity
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.signing.base import Signer
from defiagent.signing.config import build_signer
from defiagent.signing.remote.policy import (
    NonceSpendLedger,
    SafeRoute,
    SignerPolicy,
    signer_rules,
)
from defiagent.signing.remote.protocol import (
    AddressRequest,
    ProtocolError,
    RefusalInfo,
    Response,
    SignMessageRequest,
    SignTransactionRequest,
    parse_request,
    recv_frame,
    send_frame,
)
from defiagent.signing.remote.settings import SignerServiceConfig
from defiagent.signing.rotation import retired_keys
from defiagent.simulation.batch import BatchRpcClient

log = logging.getLogger("defiagent.signing.remote")

AUDIT_FILE = "signer-audit.jsonl"
LEDGER_FILE = "signer-spend.jsonl"
PROBE_PREFIX = b"defiagent signer check "  # the only messages signed: `signer check` probes
IDLE_TIMEOUT = 600.0  # a connection may wait this long between requests
MAX_CONNECTIONS = 32  # open at once; more are closed at once (the agent needs one or two)
_SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)
_UCRED = struct.Struct("3i")  # pid, uid, gid


class SignerMetrics:
    """The signer's Prometheus series, in its own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "defiagent_signer_requests",
            "Requests, by operation and outcome",
            ["op", "outcome"],
            registry=r,
        )
        self.refusals = Counter(
            "defiagent_signer_refusals",
            "Transactions refused, by the rule that refused",
            ["rule"],
            registry=r,
        )
        self.peer_refusals = Counter(
            "defiagent_signer_peer_refusals", "Connections refused by their peer uid", registry=r
        )
        self.kill_switch = Gauge(
            "defiagent_signer_kill_switch_on", "1 while its kill switch is on", registry=r
        )
        self.sign_seconds = Histogram(
            "defiagent_signer_request_seconds",
            "Time to judge and sign one transaction",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30),
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


class BackgroundAudit:
    """The signer's AuditLog, written by one background thread, in order, through AuditLog's
    hash chain. Refusals and errors are queued so the fsyncs of a durable append (tens of ms
    on a busy disk) stay off the answer; a signature is released only once its own record
    is on disk (`record_durably`): a signer that crashed after signing must not leave a
    transaction nobody can account for, which could still be broadcast later."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._queue: queue.Queue[_AuditItem | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="signer-audit", daemon=True)
        self._thread.start()

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        self._queue.put(_AuditItem(kind, payload))

    def record_durably(self, kind: str, payload: dict[str, Any]) -> None:
        """Write the record and wait for it; raise InfraError when it could not be written."""
        item = _AuditItem(kind, payload, threading.Event())
        self._queue.put(item)
        assert item.done is not None
        if not item.done.wait(30) or item.error:
            raise InfraError(
                f"the signer could not write its audit log ({item.error or 'timed out'}), "
                "so it does not release the signature"
            )

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.log.record(item.kind, item.payload)
            except Exception as exc:  # a record that cannot be written must be heard of
                item.error = f"{type(exc).__name__}: {exc}"
                log.error("the signer could not write its audit log (%s)", item.error)
            finally:
                if item.done is not None:
                    item.done.set()
                self._queue.task_done()
        self._queue.task_done()

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self.log.close()


@dataclass
class _AuditItem:
    kind: str
    payload: dict[str, Any]
    done: threading.Event | None = None  # set once written (record_durably waits on it)
    error: str = ""


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel."""
    return _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, _UCRED.size))


def _tx_summary(req: SignTransactionRequest) -> dict[str, Any]:
    tx = req.tx
    return {
        "to": tx.to,
        "selector": tx.data[:10],
        "value": str(tx.value),
        "nonce": tx.nonce,
        "chain_id": tx.chainId,
        "gas": tx.gas,
    }


class SignerService:
    """The request handler: everything but the socket (tests call `handle` directly too)."""

    def __init__(
        self,
        cfg: SignerServiceConfig,
        *,
        backend: Signer | None = None,
        ledger_dongle: Any = None,
        kms_client: Any = None,
    ) -> None:
        self.cfg = cfg
        state = cfg.state_dir
        if not state.is_dir():
            raise ConfigError(
                f"the signer's state dir {state} does not exist; create it (mode 0700)"
            )
        self.audit = BackgroundAudit(AuditLog(state / AUDIT_FILE))
        try:
            self._start(cfg, backend, ledger_dongle, kms_client)
        except BaseException:
            self.audit.close()
            raise

    def _start(
        self, cfg: SignerServiceConfig, backend: Signer | None, ledger_dongle: Any, kms_client: Any
    ) -> None:
        state = cfg.state_dir
        self.metrics = SignerMetrics()
        self.alerts: AlertDispatcher = build_alerts(cfg.alerts, audit=self.audit)
        self.kill_switch = KillSwitch(state, audit=self.audit)
        self.rpc = BatchRpcClient(cfg.rpc_endpoint(), timeout=cfg.request_timeout_seconds)
        chain = int(self.rpc.call("eth_chainId"), 16)
        if chain != cfg.chain_id:
            raise ConfigError(
                f"the signer's RPC is on chain {chain}, its config says {cfg.chain_id}"
            )
        allowlist = load_allowlist(cfg.allowlist_dir, cfg.chain_id)
        verify_on_chain(allowlist, self.rpc)  # an entry that drifted refuses the start
        self.backend = backend or build_signer(
            cfg.signer_config(), ledger_dongle=ledger_dongle, kms_client=kms_client
        )
        self.address = self.backend.address
        retired = retired_keys(state)
        if self.address.lower() in retired:
            raise Refused(
                f"the key {self.address} was retired by `defiagent signer rotate` "
                f"({retired[self.address.lower()]}); configure the new key"
            )
        rules = signer_rules(cfg.limits)
        window = next(r for r in rules if r.id == "value-cap-per-window").config.window_seconds
        safe = cfg.safe_config()
        route = SafeRoute(safe.address, safe.guard, safe.multi_send) if safe is not None else None
        self.policy = SignerPolicy(
            allowlist=allowlist,
            # Proceeds go to the Safe when there is one: it holds the funds.
            account=cfg.account or (safe.address if safe is not None else self.address),
            safe=route,
            rules=rules,
            assets=cfg.assets,
            kill_switch=self.kill_switch,
            ledger=NonceSpendLedger(state / LEDGER_FILE, window),
            rpc=self.rpc,
        )
        self.audit.record(
            "signer-start",
            {
                "address": self.address,
                "account": self.policy.account,
                "backend": cfg.signer_config().backend,
                "chain_id": cfg.chain_id,
                "allowlist_entries": len(allowlist.entries),
                "rules": [r.explain() for r in rules],
                "allowed_uids": sorted(cfg.uids),
                "socket": str(cfg.socket),
            },
        )

    # -- requests ---------------------------------------------------------------------------
    def handle(self, request: Any, peer: dict[str, int]) -> Response:
        op = getattr(request, "op", "?")
        try:
            if isinstance(request, AddressRequest):
                response = Response(ok=True, address=self.address)
            elif isinstance(request, SignTransactionRequest):
                response = self._sign_transaction(request, peer)
            elif isinstance(request, SignMessageRequest):
                response = self._sign_message(request, peer)
            else:  # parse_request only makes the three above
                response = Response(ok=False, error="unknown operation")
        except DefiagentError as exc:
            self.audit.record("signer-error", {"op": op, "error": exc.message, "peer": peer})
            response = Response(ok=False, error=exc.message)
        except Exception as exc:  # a bug refuses, with its name: nothing is signed
            log.exception("the signer failed on a request")
            message = f"the signer failed ({type(exc).__name__}); nothing was signed"
            self.audit.record("signer-error", {"op": op, "error": message, "peer": peer})
            response = Response(ok=False, error=message)
        outcome = "signed" if response.ok else ("refused" if response.refused else "error")
        self.metrics.requests.labels(op=op, outcome=outcome).inc()
        return response

    def _sign_transaction(self, request: SignTransactionRequest, peer: dict[str, int]) -> Response:
        summary = _tx_summary(request)
        started = time.perf_counter()
        with self.policy.lock:
            judgement = self.policy.judge(request.tx)
            switch_on = any(
                v.rule == "kill-switch-off" and not v.allowed for v in judgement.decision.verdicts
            )
            self.metrics.kill_switch.set(1 if switch_on else 0)
            if not judgement.decision.allowed:
                first = judgement.decision.refusals[0]
                self._refused(first.rule, judgement.decision.reason(), summary, peer)
                return Response(ok=False, refused=RefusalInfo(rule=first.rule, reason=first.reason))
            signed = self.backend.sign_transaction(request.tx.as_tx())  # verified inside
            self.policy.record(request.tx, judgement)
        self.metrics.sign_seconds.observe(time.perf_counter() - started)
        self.audit.record_durably(
            "signer-signed",
            summary
            | {
                "hash": signed.hash,
                "sender": signed.sender,
                "value_numeraire": judgement.value,
                "block": judgement.block,
                "peer": peer,
            },
        )
        return Response(ok=True, raw=signed.raw, hash=signed.hash, address=signed.sender)

    def _sign_message(self, request: SignMessageRequest, peer: dict[str, int]) -> Response:
        message = bytes.fromhex(request.message[2:])
        if not message.startswith(PROBE_PREFIX):
            # A signed message can be an off-chain order or a permit: only probes are signed.
            reason = "the signer only signs `defiagent signer check` probe messages"
            self._refused("message-probe-only", reason, {"message_bytes": len(message)}, peer)
            return Response(ok=False, refused=RefusalInfo(rule="message-probe-only", reason=reason))
        with self.policy.lock:
            signature = self.backend.sign_message(message)
        self.audit.record(
            "signer-probe", {"message": message.decode(errors="replace"), "peer": peer}
        )
        return Response(ok=True, signature="0x" + signature.hex(), address=self.address)

    def _refused(
        self, rule: str, reason: str, summary: dict[str, Any], peer: dict[str, int]
    ) -> None:
        self.metrics.refusals.labels(rule=rule).inc()
        self.audit.record(
            "signer-refused", {"rule": rule, "reason": reason, "tx": summary, "peer": peer}
        )
        self.alerts.send(
            Alert(
                kind=AlertKind.SECURITY_REFUSAL,
                severity=AlertSeverity.CRITICAL,
                title=f"the signer refused a transaction ({rule})",
                detail=reason,
                agent=self.address,
                data={"rule": rule, **summary},
            )
        )

    def peer_refused(self, pid: int, uid: int) -> None:
        self.metrics.peer_refusals.inc()
        self.audit.record("signer-peer-refused", {"pid": pid, "uid": uid})
        self.alerts.send(
            Alert(
                kind=AlertKind.SECURITY_REFUSAL,
                severity=AlertSeverity.CRITICAL,
                title="a process of another user tried the signer socket",
                detail=f"pid {pid}, uid {uid}; allowed: {sorted(self.cfg.uids)}",
                agent=self.address,
            )
        )

    def close(self) -> None:
        self.alerts.flush(2)
        self.alerts.close()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()
        self.policy.ledger.close()
        self.audit.close()


def _systemd_socket() -> socket.socket | None:
    """The listening socket systemd made (socket activation), if this process was given one."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    return socket.socket(fileno=3)


def bind_socket(path: Path) -> socket.socket:
    """A Unix socket at `path`, mode 0600 from the moment it exists (umask), in a folder no
    other user may write (else they could swap the socket for their own)."""
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"the socket's folder {folder} does not exist; create it (mode 0700)")
    info = folder.stat()
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise ConfigError(f"the socket's folder {folder} is writable by other users; make it 0700")
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a stale socket left by a crash
        else:
            raise ConfigError(f"another signer is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


class SignerServer:
    """Accepts connections, checks the peer's uid, and answers frames with `service`."""

    def __init__(self, service: SignerService) -> None:
        self.service = service
        self.cfg = service.cfg
        self._stop = threading.Event()
        self.sock = _systemd_socket() or bind_socket(self.cfg.socket)
        self._threads: list[threading.Thread] = []

    def serve_forever(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) >= MAX_CONNECTIONS:
                with contextlib.suppress(OSError):
                    send_frame(conn, Response(ok=False, error="too many open connections"))
                conn.close()
                continue
            thread = threading.Thread(target=self._connection, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                pid, uid, _gid = peer_credentials(conn)
            except OSError:
                return
            if uid not in self.cfg.uids:
                # Refused before a byte is read: the reason goes back, then the door closes.
                self.service.peer_refused(pid, uid)
                with contextlib.suppress(OSError):
                    send_frame(conn, Response(ok=False, error=f"uid {uid} may not use this signer"))
                return
            peer = {"pid": pid, "uid": uid}
            timeout = self.cfg.request_timeout_seconds
            while not self._stop.is_set():
                try:
                    body = recv_frame(conn, IDLE_TIMEOUT, timeout)
                    if body is None:
                        return
                    request = parse_request(body)
                except ProtocolError as exc:
                    self.service.audit.record(
                        "signer-bad-request", {"reason": exc.message, "peer": peer}
                    )
                    self.service.metrics.requests.labels(op="?", outcome="bad-request").inc()
                    with contextlib.suppress(OSError):
                        send_frame(conn, Response(ok=False, error=exc.message))
                    return
                except (OSError, TimeoutError, ConnectionError):
                    return
                response = self.service.handle(request, peer)
                try:
                    send_frame(conn, response)
                except OSError:
                    return

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            if self.cfg.socket.exists() and stat.S_ISSOCK(self.cfg.socket.lstat().st_mode):
                self.cfg.socket.unlink()


def serve(cfg: SignerServiceConfig, *, on_ready: Any = None) -> None:
    """Run until SIGTERM/SIGINT. `on_ready(service)` is called once the socket listens."""
    import signal

    service = SignerService(cfg)
    server = SignerServer(service)
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port, addr="127.0.0.1", registry=service.metrics.registry)

    def _stop(signum: int, frame: Any) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if on_ready is not None:
            on_ready(service)
        server.serve_forever()
    except InfraError:
        raise
    finally:
        server.stop()
        service.audit.record("signer-stop", {"address": service.address})
        service.close()
