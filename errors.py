"""The project's exceptions: one base, subclasses that also inherit the matching builtin."""


class EdgehistoError(Exception):
    """Base of every error edgehisto raises on purpose; the CLI prints these as one line."""


class BundleError(EdgehistoError):
    """A bundle cannot be used."""


class BundleNotFound(BundleError, FileNotFoundError):
    """The bundle directory or its manifest does not exist."""


class BundleIntegrityError(BundleError, ValueError):
    """A bundle file is missing or its sha256 differs from the manifest."""


class UnsupportedManifest(BundleError, ValueError):
    """The manifest's schema version or task is not one this runtime knows."""


class BundleNotVerified(BundleError, ValueError):
    """A bundle failed its parity gates at export, or carries no parity verdict."""


class InvalidImage(EdgehistoError, ValueError):
    """A tile cannot be decoded into the RGB image the model expects."""


class DatasetLayoutError(EdgehistoError, ValueError):
    """A data directory is not in a layout edgehisto recognises."""


class ExportError(EdgehistoError, RuntimeError):
    """A model cannot be exported (unsupported layer, op without a gradient rule, ...)."""


class UnknownModel(EdgehistoError, KeyError):
    """A model name that is not in the registry (the message lists the valid names)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class BundleMismatch(EdgehistoError):
    """A worker loaded a bundle whose manifest differs from the driver's."""
