"""The read API: per-user tokens, and JSON answers about exceptions, notifications and sources
for support tools and scripts, with the same masking as the pages."""
