"""_offline."""
