"""Strategies (untrusted) and the intents they may emit."""
