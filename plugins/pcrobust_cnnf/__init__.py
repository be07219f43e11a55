"""CNN-F model family: CNNs with recurrent generative feedback (Huang et al. 2020)."""

from pcrobust_cnnf.network import CNNF, Architecture

__all__ = ["CNNF", "Architecture"]
