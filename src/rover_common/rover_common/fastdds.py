"""A larger Fast DDS shared-memory segment for nodes that publish raw images.

Fast DDS's default segment is 512 KiB; one 640x360 bgr8 frame is 675 KiB, so
frames fall back to UDP fragments on the same host and a best-effort
subscriber loses most of them (measured: 13-15 of 30 Hz arrive). Only the
publisher's segment size matters, so publishers call this before rclpy.init().
"""
import os

FASTDDS_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fastdds_large_frames.xml')
_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def use_large_frame_transport(environ=os.environ) -> str | None:
    """Point Fast DDS at our profile unless the user chose one, another RMW is
    in use, or ROVER_FASTDDS_PROFILE=0. Returns the profile path when applied."""
    if any(environ.get(name) for name in _PROFILE_VARIABLES):
        return None
    if environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') not in ('rmw_fastrtps_cpp',
                                                                     'rmw_fastrtps_dynamic_cpp'):
        return None
    if environ.get('ROVER_FASTDDS_PROFILE', '1').lower() in ('0', 'off', 'false', 'no'):
        return None
    environ['FASTRTPS_DEFAULT_PROFILES_FILE'] = FASTDDS_PROFILE
    return FASTDDS_PROFILE
