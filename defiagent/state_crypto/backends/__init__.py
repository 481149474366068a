"""Key-encryption backends: each wraps and unwraps a state dir's data keys, one module each,
listed in `registry.BACKENDS`."""
