"""Built-in plugins: ordinary plugins that ship with lcbot (``help``, ``whoami``, ``quit``…)."""
