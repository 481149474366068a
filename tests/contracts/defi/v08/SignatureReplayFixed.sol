// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Fixed twin: the digest binds a nonce the call consumes, the chain id and this contract.
contract NoncedVoucher {
    address public signer;
    mapping(address => uint256) public credit;
    mapping(address => uint256) public nonces;

    constructor(address signer_) {
        signer = signer_;
    }

    function redeem(address to, uint256 amount, uint8 v, bytes32 r, bytes32 s) external {
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19Ethereum Signed Message:\n32",
                keccak256(abi.encodePacked(block.chainid, address(this), to, amount, nonces[to]))
            )
        );
        nonces[to] += 1;
        require(ecrecover(digest, v, r, s) == signer, "bad signature");
        credit[to] += amount;
    }
}
