"""Crossline's server-rendered pages: jinja2 templates and static files (package data only)."""
