"""PMGI Fusion Studio: image fusion with the PMGI network (Zhang et al., AAAI 2020)."""

__version__ = "0.1.0"
