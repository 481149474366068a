"""Audit log, metrics, alerts and the kill switch."""
