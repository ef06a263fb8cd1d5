"""The small reinforcement-learning core that deepix's agents share (navigate, locate): PPO on
gymnasium's vectorised environments with TorchRL's clipped loss and advantage estimation."""
