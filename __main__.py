"""``python -m edgehisto`` entry point."""

from edgehisto.cli import main

if __name__ == "__main__":
    main()
