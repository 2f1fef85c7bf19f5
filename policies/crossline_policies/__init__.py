"""Crossline's declarative room policies and the Synapse module that enforces them."""
