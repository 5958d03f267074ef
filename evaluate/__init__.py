"""The evaluate room: reads a bundle and labelled data; metrics, Grad-CAM panels, localisation."""
