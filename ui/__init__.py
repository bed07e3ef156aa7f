"""The web console: REST API, websocket hub and static pages. No business logic here."""
