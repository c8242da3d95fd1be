"""HTTP routes of the embedding server."""
