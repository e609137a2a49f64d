"""Distillation below the predictor: the loss terms and their weighted objective (losses), distiller.* keys to
terms fed by the teacher's cached outputs (recipe), and the teacher side (teacher: the Teacher view, its one pass)."""
