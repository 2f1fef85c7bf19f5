"""The client-API gateway: what Matrix clients reach in place of Synapse (see `proxy.py`)."""
