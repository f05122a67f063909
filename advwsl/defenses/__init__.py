"""Defenses against L2 adversarial examples: DDN adversarial training (section A V-6, eq. A V-9) and the
Madry PGD-L2 baseline (eq. A V-7), with the clean/adversarial mix of eq. A V-6."""

from .adversarial_training import (EPSILON_MAX, TRAININGS, AdversarialPerturbation, adversarial_train, ddn_training,
                                   generic_training, madry_training, make_perturbation)

__all__ = ["EPSILON_MAX", "TRAININGS", "AdversarialPerturbation", "adversarial_train", "ddn_training",
           "generic_training", "madry_training", "make_perturbation"]
