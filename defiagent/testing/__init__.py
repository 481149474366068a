"""Local stand-ins for real services (OpenBao dev server), for tests and the demo."""
