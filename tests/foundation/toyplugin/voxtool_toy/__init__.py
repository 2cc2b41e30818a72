"""A tiny third-party voxtool plugin used by the foundation tests (installed into a temp site dir)."""
