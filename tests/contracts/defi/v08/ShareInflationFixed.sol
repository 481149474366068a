// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IOffsetAsset {
    function balanceOf(address who) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// Fixed twin: virtual shares and assets (the offset OpenZeppelin's ERC4626 uses) make a
/// donation cost the attacker more than it can take.
contract OffsetVault {
    IOffsetAsset public immutable asset;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    uint256 private constant VIRTUAL_SHARES = 1e3;

    constructor(IOffsetAsset asset_) {
        asset = asset_;
    }

    function totalAssets() public view returns (uint256) {
        return asset.balanceOf(address(this));
    }

    function deposit(uint256 assets) external returns (uint256 shares) {
        uint256 supply = totalSupply;
        shares = (assets * (supply + VIRTUAL_SHARES)) / (totalAssets() + 1);
        asset.transferFrom(msg.sender, address(this), assets);
        totalSupply = supply + shares;
        balanceOf[msg.sender] += shares;
    }

    function redeem(uint256 shares) external returns (uint256 assets) {
        assets = (shares * (totalAssets() + 1)) / (totalSupply + VIRTUAL_SHARES);
        balanceOf[msg.sender] -= shares;
        totalSupply -= shares;
        asset.transfer(msg.sender, assets);
    }
}
