"""Retrieval explorer for e-commerce same-product matching."""

__version__ = "0.1.0"
