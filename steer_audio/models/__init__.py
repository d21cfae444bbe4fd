"""Models: the explicit per-architecture table, the registry of named models, the nnsight wrapper."""
