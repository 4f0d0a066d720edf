"""Mappers: from an OpGraph and a Machine to a Schedule."""
