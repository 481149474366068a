// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Vulnerable: the signed voucher holds no nonce, chain id or contract address, so the
/// same signature pays out again and again (and on every chain and copy of the contract).
contract ReplayableVoucher {
    address public signer;
    mapping(address => uint256) public credit;

    constructor(address signer_) {
        signer = signer_;
    }

    function redeem(address to, uint256 amount, uint8 v, bytes32 r, bytes32 s) external {
        bytes32 digest = keccak256(
            abi.encodePacked("\x19Ethereum Signed Message:\n32", keccak256(abi.encodePacked(to, amount)))
        );
        require(ecrecover(digest, v, r, s) == signer, "bad signature");
        credit[to] += amount;
    }
}
