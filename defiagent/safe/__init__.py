"""The agent trading from a Safe 1.4.1 through an on-chain guard made from the signed allowlist.

artifacts: real Safe bytecode from npm and the project's AllowlistGuard (solcjs).
rules:     the signed allowlist -> the guard's configuration (and its diff with the chain).
safe_tx:   Safe transactions signed by its owners (EIP-712), M of N.
deploy:    the Safe (proxy factory + singleton) and its guard module.
chain:     what the chain holds now: configuration, agent, module, code pins.
sync:      a configuration change as a proposal the owners sign, then execute.
batch:     a plan's calls as one MultiSendCallOnly transaction through the guard.
admin:     owner-side changes (the agent key swapped on rotation).
"""
