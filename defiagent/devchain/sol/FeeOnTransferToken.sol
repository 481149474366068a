// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// An ERC-20 that keeps a fee on every transfer between two holders: the recipient gets
/// `value - value * feeBps / 10000`, the fee goes to `feeCollector`, and the sender loses
/// exactly `value` (as most "tax" tokens do). Minting is not charged. The owner can change
/// the fee at any time, up to 100%: that is the risk such a token carries, and what the
/// devnet uses to show a raised fee being refused before anything is signed.
contract FeeOnTransferToken is ERC20 {
    address public immutable owner;
    address public feeCollector;
    uint256 public feeBps;

    event FeeChanged(uint256 feeBps);

    error NotOwner();
    error FeeTooHigh(uint256 feeBps);

    constructor(string memory name_, string memory symbol_, uint256 supply, uint256 feeBps_)
        ERC20(name_, symbol_)
    {
        if (feeBps_ > 10_000) revert FeeTooHigh(feeBps_);
        owner = msg.sender;
        feeCollector = msg.sender;
        feeBps = feeBps_;
        _mint(msg.sender, supply);
    }

    function setFee(uint256 feeBps_) external {
        if (msg.sender != owner) revert NotOwner();
        if (feeBps_ > 10_000) revert FeeTooHigh(feeBps_);
        feeBps = feeBps_;
        emit FeeChanged(feeBps_);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0) || feeBps == 0 || from == feeCollector) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * feeBps) / 10_000;
        super._update(from, feeCollector, fee);
        super._update(from, to, value - fee);
    }
}
