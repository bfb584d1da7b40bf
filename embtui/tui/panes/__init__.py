"""The main area's panes, one per module."""
