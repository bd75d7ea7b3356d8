"""Serving: the service object and the HTTP server."""
