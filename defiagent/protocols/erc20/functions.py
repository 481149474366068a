"""The ERC-20 functions the agent calls, with the argument names the rules read."""

APPROVE = "approve(address spender,uint256 amount)"
