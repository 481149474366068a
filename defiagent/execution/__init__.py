"""From intent to receipt: planner, executor, nonce manager, write-ahead journal."""
