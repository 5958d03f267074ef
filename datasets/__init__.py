"""The datasets room: dataset readers, synthetic generators, inspection, splits and task adapters.

Reading data needs numpy and OpenCV only (no TensorFlow).
"""
