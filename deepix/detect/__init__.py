"""Object detection: the model head, its evaluation and its pictures."""
