def doctor() -> None:
    """Placeholder."""
