"""Pure helpers two apps share: no models, nothing of ours imported."""
