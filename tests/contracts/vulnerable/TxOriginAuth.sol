// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Authorises with tx.origin: any contract the owner calls can spend on their behalf.
contract OriginWallet {
    address public immutable owner;

    constructor() {
        owner = msg.sender;
    }

    function pay(address payable to, uint256 amount) external {
        require(tx.origin == owner, "not owner");
        to.transfer(amount);
    }

    receive() external payable {}
}
