"""Predify model family: feedforward backbones augmented with predictive-coding feedback (Choksi et al. 2021)."""

from pcrobust_predify.config import predify
from pcrobust_predify.network import PredifyNet
from pcrobust_predify.pcoder import Hyperparameters, PCoder

__all__ = ["Hyperparameters", "PCoder", "PredifyNet", "predify"]
