// SPDX-License-Identifier: MIT
pragma solidity ^0.5.16;

/// Vulnerable (the BeautyChain bug): before 0.8 `receivers.length * value` wraps around,
/// so a huge `value` passes the balance check and credits every receiver.
contract BatchToken {
    mapping(address => uint256) public balanceOf;

    constructor() public {
        balanceOf[msg.sender] = 1e24;
    }

    function batchTransfer(address[] memory receivers, uint256 value) public {
        uint256 amount = receivers.length * value;
        require(balanceOf[msg.sender] >= amount, "balance");
        balanceOf[msg.sender] -= amount;
        for (uint256 i = 0; i < receivers.length; i++) {
            balanceOf[receivers[i]] += value;
        }
    }
}
