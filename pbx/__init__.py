"""PBX line adapters: translate a PBX protocol into core line events and commands."""
