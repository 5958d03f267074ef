"""Dataset readers: each turns a directory layout into tiles, labels and groups (no TensorFlow)."""
