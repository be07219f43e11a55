"""Hyperparameter sweeps: one full run of a plan per point of a grid of model options, side by side."""
