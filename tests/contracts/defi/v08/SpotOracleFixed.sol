// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IPriceFeed {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

interface IFeedToken {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// Fixed twin: the collateral is priced by an oracle feed (checked for staleness), not by a
/// pool's spot reserves.
contract FeedLender {
    IPriceFeed public immutable feed;
    IFeedToken public immutable collateral;
    IFeedToken public immutable debt;
    mapping(address => uint256) public deposited;
    mapping(address => uint256) public borrowed;

    constructor(IPriceFeed feed_, IFeedToken collateral_, IFeedToken debt_) {
        feed = feed_;
        collateral = collateral_;
        debt = debt_;
    }

    function deposit(uint256 amount) external {
        collateral.transferFrom(msg.sender, address(this), amount);
        deposited[msg.sender] += amount;
    }

    function borrow(uint256 amount) external {
        (, int256 answer, , uint256 updatedAt, ) = feed.latestRoundData();
        require(answer > 0 && block.timestamp - updatedAt < 1 hours, "stale price");
        uint256 limit = (deposited[msg.sender] * uint256(answer) * 75) / 100 / 1e8;
        require(borrowed[msg.sender] + amount <= limit, "over the limit");
        borrowed[msg.sender] += amount;
        debt.transfer(msg.sender, amount);
    }
}
