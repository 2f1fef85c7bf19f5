"""Live sessions' media engine: Janus (VideoRoom SFU) and coturn, and the hub's adapter to them."""
