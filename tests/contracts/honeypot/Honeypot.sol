// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Test tokens for the round-trip (honeypot) probe: an honest control and two honeypots.
// Each is a plain OpenZeppelin ERC-20 whose owner (the deployer) names its Uniswap V2
// pair once the pool exists; the traps only act on transfers to or from that pair.
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// The control: nothing but OpenZeppelin's ERC-20.
contract HonestToken is ERC20 {
    constructor(string memory name_, string memory symbol_, uint256 supply) ERC20(name_, symbol_) {
        _mint(msg.sender, supply);
    }
}

/// Honeypot (a): anyone can buy (the pair sends tokens out), but a transfer to the pair
/// reverts unless it comes from the owner, so nobody else can ever sell.
contract SellBlockToken is ERC20 {
    address public immutable owner;
    address public pair;

    constructor(string memory name_, string memory symbol_, uint256 supply) ERC20(name_, symbol_) {
        owner = msg.sender;
        _mint(msg.sender, supply);
    }

    function setPair(address pair_) external {
        require(msg.sender == owner, "not owner");
        pair = pair_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (pair != address(0) && to == pair && from != owner) {
            revert("transfers to the pair are closed");
        }
        super._update(from, to, value);
    }
}

/// Honeypot (b): a fee of `feeBps` on transfers to the pair (a sell tax, `onSell`) or from
/// it (a buy tax), paid to the owner. The owner's own transfers are not taxed.
contract FeeToken is ERC20 {
    address public immutable owner;
    uint256 public immutable feeBps;
    bool public immutable onSell;
    address public pair;

    constructor(
        string memory name_,
        string memory symbol_,
        uint256 supply,
        uint256 feeBps_,
        bool onSell_
    ) ERC20(name_, symbol_) {
        require(feeBps_ <= 10_000, "fee above 100%");
        owner = msg.sender;
        feeBps = feeBps_;
        onSell = onSell_;
        _mint(msg.sender, supply);
    }

    function setPair(address pair_) external {
        require(msg.sender == owner, "not owner");
        pair = pair_;
    }

    function _update(address from, address to, uint256 value) internal override {
        bool taxed = onSell ? to == pair : from == pair;
        if (pair != address(0) && taxed && from != owner && to != owner && feeBps > 0) {
            uint256 fee = (value * feeBps) / 10_000;
            super._update(from, owner, fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}
