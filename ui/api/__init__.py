"""REST API routes (JSON)."""
