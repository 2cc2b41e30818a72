"""A plugin module that fails at import, as a broken third-party plugin would."""

raise ImportError("voxtool_toy.broken needs the package 'not-installed-anywhere'")
