"""Which environment variable points FastDDS at a profile XML (config/fastdds_same_host.xml).

Fast DDS 2.x (ROS 2 Humble, Iron, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3.x
(Kilted and later) reads FASTDDS_DEFAULT_PROFILES_FILE and, with a deprecation warning in every
process, the old name too. Measured on the PyPI wheels: on Jazzy (Fast DDS 2.14) a profile given
only as FASTDDS_DEFAULT_PROFILES_FILE is ignored (17 of 300 640x480 frames arrived), with
FASTRTPS_DEFAULT_PROFILES_FILE 180 of 180.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy")


def profile_var(distro: Optional[str] = None) -> str:
    """The variable the FastDDS of ``distro`` (default: $ROS_DISTRO) reads."""
    distro = os.environ.get("ROS_DISTRO", "") if distro is None else distro
    return PROFILE_VARS[0] if distro.strip().lower() in FAST_DDS_2_DISTROS else PROFILE_VARS[1]


def current_profile(env: Mapping[str, str] = os.environ) -> str:
    """The profile file ``env`` points FastDDS at ('' for none)."""
    return env.get(PROFILE_VARS[1]) or env.get(PROFILE_VARS[0]) or ""


def set_profile(env, path) -> None:
    """Point ``env`` (os.environ or a dict for a subprocess) at ``path``; '' or None = none."""
    for var in PROFILE_VARS:
        env.pop(var, None)
    if path:
        env[profile_var(env.get("ROS_DISTRO", ""))] = str(path)
