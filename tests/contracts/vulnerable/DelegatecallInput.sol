// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Delegatecalls any address with any data: the caller runs code in this contract's storage.
contract Forwarder {
    address public owner;

    constructor() {
        owner = msg.sender;
    }

    function exec(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory out) = target.delegatecall(data);
        require(ok, "failed");
        return out;
    }
}
