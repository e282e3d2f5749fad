"""Beam transforms: sources, the RunInference ModelHandler, writers, dead letters."""
