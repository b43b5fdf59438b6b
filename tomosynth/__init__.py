"""tomosynth: micro-CT reconstruction, GAN image synthesis and their evaluation."""

__version__ = "0.1.0"
