"""The kiosk: ``edgehisto serve``, a local page and JSON API over the runtime (the [kiosk] extra)."""
