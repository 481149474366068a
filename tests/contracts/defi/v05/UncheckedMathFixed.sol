// SPDX-License-Identifier: MIT
pragma solidity ^0.5.16;

library SafeMath {
    function add(uint256 a, uint256 b) internal pure returns (uint256 c) {
        require((c = a + b) >= a, "add overflow");
    }

    function sub(uint256 a, uint256 b) internal pure returns (uint256) {
        require(b <= a, "sub underflow");
        return a - b;
    }

    function mul(uint256 a, uint256 b) internal pure returns (uint256 c) {
        require(a == 0 || (c = a * b) / a == b, "mul overflow");
    }
}

/// Fixed twin: every sum, difference and product goes through SafeMath.
contract SafeBatchToken {
    using SafeMath for uint256;

    mapping(address => uint256) public balanceOf;

    constructor() public {
        balanceOf[msg.sender] = 1e24;
    }

    function batchTransfer(address[] memory receivers, uint256 value) public {
        uint256 amount = receivers.length.mul(value);
        balanceOf[msg.sender] = balanceOf[msg.sender].sub(amount);
        for (uint256 i = 0; i < receivers.length; i = i.add(1)) {
            balanceOf[receivers[i]] = balanceOf[receivers[i]].add(value);
        }
    }
}
