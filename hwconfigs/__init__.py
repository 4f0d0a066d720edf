"""Shipped machine files (package data)."""
