"""Inference stage: the runner predict calls (no Trainer) and its timing, the inference modes (bf16, int8,
compiled, ONNX), the bf16 CPU attention operator and the CPU allocator setting."""
