"""advwsl: minimal-L2 adversarial attacks and defenses, and weakly supervised histology models.

Images are float tensors in [0, 1], NCHW; normalization lives inside the models.
"""

__version__ = "0.1.0"
