"""Task plugins shipped with voxtool (registered through the `voxtool.tasks` entry-point group)."""
