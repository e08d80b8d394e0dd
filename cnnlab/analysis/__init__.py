"""Profiling and paper-style tables."""

from cnnlab.analysis.profile import Profile, StageProfile, profile

__all__ = ["Profile", "StageProfile", "profile"]
