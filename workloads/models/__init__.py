"""Architecture presets of published models."""
