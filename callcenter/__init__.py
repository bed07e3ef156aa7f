"""callcenter core: the domain (clients, calls, tasks) and the services that decide."""

__version__ = "0.1.0"
