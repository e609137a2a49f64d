"""Reports above the predictor: side-by-side comparisons, the distillation table and its bundled tasks."""
