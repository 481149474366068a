// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// sweep() checks the owner, but anyone can make themselves the owner first.
contract OpenVault {
    address public owner;

    constructor() {
        owner = msg.sender;
    }

    function setOwner(address newOwner) external {
        owner = newOwner;
    }

    function sweep(address payable to) external {
        require(msg.sender == owner, "not owner");
        to.transfer(address(this).balance);
    }

    receive() external payable {}
}
