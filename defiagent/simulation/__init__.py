"""Fork simulation: run the exact transaction on a fork and read what it did."""
