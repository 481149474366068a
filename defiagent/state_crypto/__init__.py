"""Encryption at rest of the state dir (envelope encryption).

A random data key per state dir seals its sensitive files with AES-256-GCM (cipher.py);
the data key is kept only wrapped, in `state-key.json` (keyfile.py), by a key-encryption
backend that never hands its own key out: the OS keyring, AWS KMS or Vault transit
(backends/). `active.cipher_for(folder)` is how each file layer finds out whether and how
to seal (files.py); `rekey.rekey_state_dir` moves a state dir to a new key. docs/privacy.md.
"""
