"""Network policy shared by every outbound client (TLS)."""
