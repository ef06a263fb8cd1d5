"""Plots, diagnosis and the one-file HTML report of a training run."""
from .diagnose import diagnose
from .html import write_report
from .plots import image_grid, plot_class_counts, plot_confusion, plot_curves

__all__ = ["diagnose", "image_grid", "plot_class_counts", "plot_confusion", "plot_curves", "write_report"]
