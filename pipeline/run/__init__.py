"""The run directory: its stage registry, the write side (atomic stages, manifests) and the read side."""
