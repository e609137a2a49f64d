"""Knowledge distillation: loss terms and objective (losses), teacher handling (teacher), student search (search)."""
