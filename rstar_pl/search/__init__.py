"""Search over code-augmented reasoning steps: MCTS (training data and test
time), step-level beam search, best-of-N, and majority vote.

Pure Python over flat trees (`tree.py`); no model library is imported. The
policy, the PPM and the sandbox are passed in through `SearchEnv`. Every
strategy grows its trees through the same expansion phases (`expand.py`) and
the same lock-step driver (`lockstep.py`: one backend call per depth level for
the whole batch, failed steps never explored).
"""

from rstar_pl.search.beam import BeamConfig, run_beam
from rstar_pl.search.best_of_n import BestOfNConfig, run_best_of_n
from rstar_pl.search.expand import Candidate, Expansion, Sampling, SearchEnv, expand
from rstar_pl.search.lockstep import Lead, Strategy, run_lockstep
from rstar_pl.search.mcts import MCTSConfig, new_tree, run_mcts, select_child, select_leaf
from rstar_pl.search.seeding import derive_seed
from rstar_pl.search.trajectory import Trajectory, best_answered, ranked_trajectories
from rstar_pl.search.tree import SCHEMA, Tree, TreeRecordError, recompute_statistics
from rstar_pl.search.vote import majority_vote

__all__ = [
    "SCHEMA",
    "BeamConfig",
    "BestOfNConfig",
    "Candidate",
    "Expansion",
    "Lead",
    "MCTSConfig",
    "Sampling",
    "SearchEnv",
    "Strategy",
    "Trajectory",
    "Tree",
    "TreeRecordError",
    "best_answered",
    "derive_seed",
    "expand",
    "majority_vote",
    "new_tree",
    "ranked_trajectories",
    "recompute_statistics",
    "run_beam",
    "run_best_of_n",
    "run_lockstep",
    "run_mcts",
    "select_child",
    "select_leaf",
]
