"""``python -m lcbot`` — the same as the ``lcbot`` command."""

from lcbot.cli import main

if __name__ == "__main__":
    main()
