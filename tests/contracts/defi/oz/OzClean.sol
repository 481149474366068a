// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// Known-good OpenZeppelin 5 building blocks, for the DeFi detectors' false positives:
/// permit (EIP-712 with a consumed nonce), owner-only and paid mints, a flash mint, an
/// ERC-4626 vault (virtual offset), a locked UUPS implementation. None may be flagged.

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20FlashMint} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20FlashMint.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

contract ZooToken is ERC20, ERC20Permit, ERC20Burnable, ERC20FlashMint, Ownable {
    constructor() ERC20("Zoo", "ZOO") ERC20Permit("Zoo") Ownable(msg.sender) {}
    function mint(address to, uint256 amount) external onlyOwner { _mint(to, amount); }
}

contract ZooVault is ERC4626 {
    constructor(IERC20 asset_) ERC20("Zoo Vault", "zZOO") ERC4626(asset_) {}
}

contract ZooImpl is Initializable, UUPSUpgradeable {
    address public owner;
    constructor() { _disableInitializers(); }
    function initialize(address o) external initializer { owner = o; }
    function _authorizeUpgrade(address) internal view override { require(msg.sender == owner); }
}
