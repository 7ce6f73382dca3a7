"""rstar-pl: rStar-Math self-evolution (MCTS over code-augmented steps, a process
preference model, SFT) on PyTorch Lightning, with an evaluation harness.

The subpackages are imported on demand; this package imports nothing heavy.
"""

__version__ = "0.1.0"
