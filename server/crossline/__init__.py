"""Crossline: a hardened Matrix hub for structured dialogue across conflict lines."""
