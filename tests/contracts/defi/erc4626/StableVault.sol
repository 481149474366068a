// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

/// A plain OpenZeppelin ERC-4626 vault: everything it does comes from the library.
contract StableVault is ERC4626 {
    constructor(IERC20 asset_) ERC20("Stable Vault", "sVLT") ERC4626(asset_) {}
}
