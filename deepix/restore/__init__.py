"""Image restoration: degradations, classical baselines and the field's metrics."""
