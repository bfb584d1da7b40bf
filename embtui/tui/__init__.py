"""The Textual app: screens, widgets and styles; talks to the engine and jobs only."""
