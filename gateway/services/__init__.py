"""Use cases tying storage, matching and messaging together (routes and workers call these)."""
