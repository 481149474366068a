// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IPairReserves {
    function getReserves() external view returns (uint112, uint112, uint32);
}

interface IToken {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// Vulnerable: the collateral is priced at the pool's spot reserves, which one flash
/// swap moves; the borrow limit follows the manipulated price.
contract SpotLender {
    IPairReserves public immutable pair;
    IToken public immutable collateral;
    IToken public immutable debt;
    mapping(address => uint256) public deposited;
    mapping(address => uint256) public borrowed;

    constructor(IPairReserves pair_, IToken collateral_, IToken debt_) {
        pair = pair_;
        collateral = collateral_;
        debt = debt_;
    }

    function deposit(uint256 amount) external {
        collateral.transferFrom(msg.sender, address(this), amount);
        deposited[msg.sender] += amount;
    }

    function borrow(uint256 amount) external {
        (uint112 reserveCollateral, uint112 reserveDebt, ) = pair.getReserves();
        uint256 price = (uint256(reserveDebt) * 1e18) / reserveCollateral;
        uint256 limit = (deposited[msg.sender] * price * 75) / 100 / 1e18;
        require(borrowed[msg.sender] + amount <= limit, "over the limit");
        borrowed[msg.sender] += amount;
        debt.transfer(msg.sender, amount);
    }
}
