"""Worked examples of extending backend_kit (see docs/extending.md)."""
