"""AWS KMS signer through real boto3 calls to a local moto server on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
from cryptography.hazmat.primitives import serialization
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak, to_checksum_address

from defiagent.errors import ConfigError, InfraError
from defiagent.signing import der
from defiagent.signing.base import SignatureMismatch, Signer
from defiagent.signing.kms import KmsSigner, RetryPolicy
from defiagent.signing.secp256k1 import HALF_N, SECP256K1_N
from tests.signing.helpers import FAST_RETRY, REGION, TYPED_DATA, run_on_anvil

TO = "0x000000000000000000000000000000000000bEEF"
TX = {
    "type": 2,
    "chainId": 31337,
    "nonce": 0,
    "to": TO,
    "value": 1,
    "gas": 21000,
    "maxFeePerGas": 2 * 10**9,
    "maxPriorityFeePerGas": 10**9,
}


def _moto_key_address(key_id: str) -> str:
    """The address of the key inside moto, computed without our DER code."""
    from moto.kms.models import kms_backends

    key = kms_backends["123456789012"][REGION].keys[key_id]
    point = key.private_key.private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return to_checksum_address(keccak(point[1:])[-20:])


def test_address_comes_from_get_public_key(kms_signer, kms_key):
    assert isinstance(kms_signer, Signer)
    assert kms_signer.address == _moto_key_address(kms_key)


def test_signs_on_anvil_eip1559_and_legacy(w3, kms_signer):
    run_on_anvil(w3, kms_signer)


def test_messages_and_typed_data(kms_signer):
    signature = kms_signer.sign_message(b"gm")
    assert Account.recover_message(encode_defunct(b"gm"), signature=signature) == kms_signer.address
    signature = kms_signer.sign_typed_data(TYPED_DATA)
    signable = encode_typed_data(full_message=TYPED_DATA)
    assert Account.recover_message(signable, signature=signature) == kms_signer.address


def test_the_digest_is_signed_as_is(kms, kms_signer):
    # With MessageType=DIGEST, KMS must sign our keccak digest, not sha256 of it: verify the
    # DER signature against the digest with cryptography, independent of our recovery code.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    digest = keccak(b"any 32 bytes")
    answer = kms.client().sign(
        KeyId=kms_signer.key_id,
        Message=digest,
        MessageType="DIGEST",
        SigningAlgorithm="ECDSA_SHA_256",
    )
    spki = kms.client().get_public_key(KeyId=kms_signer.key_id)["PublicKey"]
    public = serialization.load_der_public_key(spki)
    public.verify(answer["Signature"], digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_high_s_from_kms_is_normalised(kms, kms_signer):
    kms.misbehave.high_s = True  # real KMS returns high s about half of the time
    signed = kms_signer.sign_transaction(TX)
    s = int.from_bytes(bytes.fromhex(signed.raw[2:])[-32:], "big")
    assert s <= HALF_N
    assert Account.recover_transaction(signed.raw) == kms_signer.address


def test_malformed_der_is_refused_and_alerted(kms, kms_signer, alerts):
    _ = kms_signer.address
    kms.misbehave.malformed_der = True
    with pytest.raises(SignatureMismatch, match="malformed DER"):
        kms_signer.sign_transaction(TX)
    assert alerts[0][1]["backend"] == "kms"


def test_signature_by_another_key_is_refused(kms, kms_signer, alerts):
    _ = kms_signer.address
    kms.misbehave.other_key = True
    with pytest.raises(SignatureMismatch, match="wrong key"):
        kms_signer.sign_transaction(TX)
    with pytest.raises(SignatureMismatch):
        kms_signer.sign_message(b"gm")
    assert len(alerts) == 2


def test_pinned_address_must_match(kms, kms_key, alerts):
    signer = KmsSigner(
        kms_key, REGION, endpoint_url=kms.endpoint_url, expected_address=Account.create().address
    )
    with pytest.raises(SignatureMismatch, match="not the configured"):
        _ = signer.address
    assert alerts


def test_throttling_is_retried_with_backoff(kms, kms_signer, caplog):
    _ = kms_signer.address
    kms.misbehave.throttle_next = 2
    kms_signer.sign_message(b"gm")
    assert kms.sign_calls == 3
    assert sum("ThrottlingException" in r.getMessage() for r in caplog.records) == 2


def test_persistent_throttling_is_an_infra_error(kms, kms_signer):
    _ = kms_signer.address
    kms.misbehave.throttle_next = 100
    with pytest.raises(InfraError, match="throttling Sign after 3 attempts") as info:
        kms_signer.sign_message(b"gm")
    assert info.value.exit_code == 3
    assert kms.sign_calls == 3


def test_wrong_key_spec_is_a_config_error(kms):
    key_id = kms.create_key(key_spec="ECC_NIST_P256")
    signer = KmsSigner(key_id, REGION, endpoint_url=kms.endpoint_url, retry=FAST_RETRY)
    with pytest.raises(ConfigError, match="ECC_NIST_P256, not ECC_SECG_P256K1"):
        _ = signer.address


def test_unknown_key_is_a_config_error(kms):
    signer = KmsSigner(
        "11111111-2222-3333-4444-555555555555",
        REGION,
        endpoint_url=kms.endpoint_url,
        retry=FAST_RETRY,
    )
    with pytest.raises(ConfigError, match="NotFoundException"):
        _ = signer.address


def test_unreachable_kms_is_an_infra_error(aws_env):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    signer = KmsSigner(
        "alias/agent",
        REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01),
    )
    with pytest.raises(InfraError, match="unreachable") as info:
        _ = signer.address
    assert info.value.exit_code == 3


def test_no_credentials_is_a_config_error(kms, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    # Keep botocore from asking an EC2 metadata service that is not there.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    signer = KmsSigner("alias/agent", REGION, endpoint_url=kms.endpoint_url, retry=FAST_RETRY)
    with pytest.raises(ConfigError, match="no AWS credentials"):
        _ = signer.address


# --- DER helpers ---------------------------------------------------------------------


def test_der_signature_parsing_is_strict():
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    good = encode_dss_signature(5, 7)
    assert der.decode_signature(good) == (5, 7)
    for bad in (
        good[:-1],  # truncated
        good + b"\x00",  # trailing garbage
        b"\x31" + good[1:],  # a SET, not a SEQUENCE
        encode_dss_signature(0, 7),  # r = 0
        encode_dss_signature(5, SECP256K1_N),  # s out of range
        b"",
    ):
        with pytest.raises(der.MalformedDer):
            der.decode_signature(bad)


def test_public_key_must_be_secp256k1():
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = p256.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(der.MalformedDer, match="secp256k1"):
        der.address_from_spki(spki)
    account = Account.create()
    k1 = ec.derive_private_key(int.from_bytes(account.key, "big"), ec.SECP256K1()).public_key()
    spki = k1.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert der.address_from_spki(spki) == account.address
