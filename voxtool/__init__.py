"""voxtool: one command line for five singing and speech ML systems."""

__version__ = "0.1.0"
