"""The WETH9 functions the agent calls, with their names in WETH9's own source."""

DEPOSIT = "deposit()"
WITHDRAW = "withdraw(uint256 wad)"
APPROVE = "approve(address guy,uint256 wad)"
