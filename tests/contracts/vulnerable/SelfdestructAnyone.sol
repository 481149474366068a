// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Anyone can destroy it (and, before Cancun, free its address for other code).
contract Killable {
    uint256 public stored;

    function store(uint256 value) external {
        stored = value;
    }

    function kill() external {
        selfdestruct(payable(msg.sender));
    }
}
