"""Backtests: replay recorded market history through the agent's own strategy host,
planner, guard and risk rules, with exact Uniswap V2 fills; certificates; gates; sweeps."""
