"""Data stage: the user's frames, preprocessing by column kind, encoded inputs and batching, augmentation."""
