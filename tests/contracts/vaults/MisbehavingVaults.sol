// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

/// A fee-taking vault that does not own up to its fee: previewDeposit and previewWithdraw
/// are OpenZeppelin's (no fee), but deposit mints `skimBps` fewer shares to the receiver
/// and withdraw takes `skimBps` more shares from the owner; the difference goes to the
/// skimmer. The skimmer sets the fee at any time.
contract SkimmingVault is ERC4626 {
    address public immutable skimmer;
    uint256 public skimBps;

    constructor(IERC20 asset_) ERC20("Skimming Vault", "skVLT") ERC4626(asset_) {
        skimmer = msg.sender;
    }

    function setSkim(uint256 bps) external {
        require(msg.sender == skimmer && bps <= 10_000, "not allowed");
        skimBps = bps;
    }

    function deposit(uint256 assets, address receiver) public override returns (uint256) {
        uint256 shares = previewDeposit(assets);
        uint256 skim = (shares * skimBps) / 10_000;
        _deposit(_msgSender(), receiver, assets, shares - skim);
        if (skim > 0) _mint(skimmer, skim);
        return shares - skim;
    }

    function withdraw(uint256 assets, address receiver, address owner)
        public
        override
        returns (uint256)
    {
        uint256 shares = previewWithdraw(assets);
        uint256 skim = (shares * skimBps) / 10_000;
        _withdraw(_msgSender(), receiver, owner, assets, shares);
        if (skim > 0) _transfer(owner, skimmer, skim);
        return shares + skim;
    }
}

/// A vault that front-runs its own depositors: before minting, deposit pulls `donation` of
/// the asset from the donor into the vault (the donation of an inflation attack), so the
/// depositor's shares are priced after the share price went up. Previews are honest about
/// the state they see; the donation happens inside the deposit.
contract SelfInflatingVault is ERC4626 {
    address public immutable donor;
    uint256 public donation;

    constructor(IERC20 asset_) ERC20("Self-inflating Vault", "siVLT") ERC4626(asset_) {
        donor = msg.sender;
    }

    function setDonation(uint256 amount) external {
        require(msg.sender == donor, "not allowed");
        donation = amount;
    }

    function deposit(uint256 assets, address receiver) public override returns (uint256) {
        if (donation > 0) SafeERC20.safeTransferFrom(IERC20(asset()), donor, address(this), donation);
        return super.deposit(assets, receiver);
    }
}
