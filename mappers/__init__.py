"""Mappers: from an OpGraph and a Machine to a Schedule (or an Infeasible with its reason)."""

from archsim.mappers.base import Mapper, get_mapper, register_mapper, registered_mappers
from archsim.mappers.schedule import Infeasible, Schedule, ScheduledOp

__all__ = [
    "Infeasible",
    "Mapper",
    "Schedule",
    "ScheduledOp",
    "get_mapper",
    "register_mapper",
    "registered_mappers",
]
