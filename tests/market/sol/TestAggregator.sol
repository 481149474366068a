// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Chainlink's AggregatorV3 read interface with a round the test sets, so every check on
/// latestRoundData (non-positive answer, zero or future updatedAt, answeredInRound behind
/// roundId, staleness, circuit-breaker bounds) can be made to fire on a real chain.
contract TestAggregator {
    uint8 public immutable decimals;
    string public description;
    uint256 public constant version = 4;

    uint80 private roundId;
    int256 private answer;
    uint256 private startedAt;
    uint256 private updatedAt;
    uint80 private answeredInRound;

    constructor(uint8 decimals_, string memory description_) {
        decimals = decimals_;
        description = description_;
    }

    /// Test-only: the next latestRoundData answer, field by field.
    function setRound(
        uint80 roundId_,
        int256 answer_,
        uint256 updatedAt_,
        uint80 answeredInRound_
    ) external {
        roundId = roundId_;
        answer = answer_;
        startedAt = updatedAt_;
        updatedAt = updatedAt_;
        answeredInRound = answeredInRound_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (roundId, answer, startedAt, updatedAt, answeredInRound);
    }
}
