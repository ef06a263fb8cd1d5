"""The loop (fit, evaluate), checkpoints and machine settings; knows nothing about any one task."""
