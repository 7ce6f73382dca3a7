"""LightningModules of rstar-pl: the policy (SFT) and the process preference model."""

from modules.policy import PolicyModule
from modules.ppm import PPMModule
from modules.value_model import ValueHeadModel

__all__ = ["PPMModule", "PolicyModule", "ValueHeadModel"]
