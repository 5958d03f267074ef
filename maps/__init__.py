"""Slide maps (``edgehisto map``): a slide region tiled, classified and drawn, with a tile table and
QuPath-ready GeoJSON. Imports runtime and bundle only, like kiosk and scale."""
