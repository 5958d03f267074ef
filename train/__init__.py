"""The train room: Keras model builders, augmentation and the fit loop; writes run directories."""
