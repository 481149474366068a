"""Risk limits: rules of the same shape as the guard's, each with its own [risk.*] section."""
