"""The ERC-4626 functions the agent calls and reads, named as in OpenZeppelin's ERC4626."""

DEPOSIT = "deposit(uint256 assets,address receiver)"
WITHDRAW = "withdraw(uint256 assets,address receiver,address owner)"
PREVIEW_DEPOSIT = "previewDeposit(uint256 assets)"
PREVIEW_WITHDRAW = "previewWithdraw(uint256 assets)"
CONVERT_TO_ASSETS = "convertToAssets(uint256 shares)"
ASSET = "asset()"
