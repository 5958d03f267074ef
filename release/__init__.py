"""Curating and shipping the embedded models: choosing candidates, model cards, real-tissue samples,
and installing into ``runtime/models``. It may import export, evaluate and runtime; nothing imports it."""
