// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// An ERC-20 whose approve behaves like Tether's USDT on Ethereum mainnet: changing a
/// non-zero allowance to another non-zero value reverts. The allowance must be set to 0
/// first (USDT's answer to the approve front-running race). transferFrom spends the
/// allowance as usual (OpenZeppelin's internal _spendAllowance is not affected).
contract ResetApproveToken is ERC20 {
    error AllowanceNotReset(address owner, address spender, uint256 current);

    constructor(string memory name_, string memory symbol_, uint256 supply) ERC20(name_, symbol_) {
        _mint(msg.sender, supply);
    }

    function approve(address spender, uint256 value) public override returns (bool) {
        uint256 current = allowance(msg.sender, spender);
        // USDT: require(!((_value != 0) && (allowed[msg.sender][_spender] != 0)))
        if (value != 0 && current != 0) {
            revert AllowanceNotReset(msg.sender, spender, current);
        }
        return super.approve(spender, value);
    }
}
