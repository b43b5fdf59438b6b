"""Training loops, sampling and the plumbing they share (`tomosynth.train.common`)."""
