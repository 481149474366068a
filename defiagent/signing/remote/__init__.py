"""The policy-checking signer process and the agent's client for it.

    agent process --(unsigned tx over a Unix socket, peer uid checked)--> signer process
                                                                          owns the credential,
                                                                          re-checks every tx

protocol.py  the wire: length-prefixed JSON frames, pydantic models, size caps, deadlines
policy.py    the signer's own checks: the guard's rule classes on a decoded transaction
settings.py  signer.toml: socket, allowed uid, RPC, allowlist, limits, the credential
server.py    `defiagent signer serve`: the socket, the audit log, metrics and alerts
client.py    RemoteSigner: the Signer the agent uses when `[signer] backend = "remote"`
"""
