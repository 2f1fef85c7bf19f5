"""Writing Synapse's configuration from Crossline's hardened template."""
