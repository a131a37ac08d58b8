"""Example plugins. ``lcbot init`` copies ``sysmon.py`` into a new project's ``plugins/``
folder; the checkout's ``plugins/sysmon.py`` is a link to it. They are never loaded from
here: only as folder plugins."""
