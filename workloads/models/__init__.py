"""Architecture presets of published models."""

from archsim.workloads.models.presets import PRESETS, ModelArchitecture, get_model

__all__ = ["PRESETS", "ModelArchitecture", "get_model"]
