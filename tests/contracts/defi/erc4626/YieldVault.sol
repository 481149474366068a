// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

/// A second vault built on the same library files, with a larger virtual offset: the
/// library's findings triaged once for StableVault must apply here too.
contract YieldVault is ERC4626 {
    constructor(IERC20 asset_) ERC20("Yield Vault", "yVLT") ERC4626(asset_) {}

    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }
}
