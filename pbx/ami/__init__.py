"""Asterisk Manager Interface: sans-I/O protocol, asyncio connection, call correlator, emulator."""
