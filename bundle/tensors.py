"""ONNX tensor names, part of the bundle contract: export writes them, the runtime feeds and reads them."""

IMAGE = "image"  # backbone input: the preprocessed NHWC float32 batch
ACTIVATIONS = "activations"  # backbone output and head input: the Grad-CAM layer's activations
LOGITS = "logits"  # head output: pre-activation class scores
PROBABILITIES = "probabilities"  # head output: sigmoid or softmax
SEED = "seed"  # head_gradient input: d(class score)/d(logits), one row per tile
GRADIENT = "gradient"  # head_gradient output: d(class score)/d(activations)
