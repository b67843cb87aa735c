"""Measure each real stage's service time on this machine, across batch sizes."""

from recsys.profile.timing import profile_stage, profile_stages, summarize_profile

__all__ = ["profile_stage", "profile_stages", "summarize_profile"]
