"""Modal screens: help, document, job log, pickers."""
