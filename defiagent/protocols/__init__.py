"""Protocol adapters: one folder per protocol, listed in `registry.py` (see `base.py`)."""
