"""Hydra entry points: the only code that reads configs, instantiates objects and writes files."""
