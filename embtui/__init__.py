"""embtui: choose, check and improve embedding models on your own data."""

__version__ = "0.1.0"
