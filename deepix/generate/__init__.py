"""Image generation: measuring generated images."""
