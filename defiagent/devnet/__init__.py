"""`defiagent devnet up|down|status`: a local mainnet stand-in that outlives the command.

anvil and the traders run as background processes recorded in DIR/devnet.json; the
contracts come from every registered protocol's devnet deployment; DIR gets an agent.toml,
a signed allowlist and throwaway keys, ready for `defiagent dry-run` and `defiagent run`.
"""
