"""Finding objects by reward (Caicedo & Lazebnik 2015, "Active Object Localization with Deep Reinforcement
Learning"): an agent sees the crop under its box and moves, scales and reshapes the box until it triggers
on an object. The environment is in env.py, the baselines and the detection figures in baselines.py."""
