"""Strategies shipped in the package, as SDK files run in the sandbox like any other.

`StrategyConfig.builtin` maps a name to a file here (see `defiagent.strategy.config.BUILTINS`).
"""
