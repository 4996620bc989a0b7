#!/usr/bin/env bash
# Start the rover: source ROS 2 and the workspace, then `ros2 launch rover
# bringup.launch.py` with launch arguments, or run any other command in that
# environment. The image's ENTRYPOINT; the native systemd unit runs it too.
#
#   rover-entrypoint                               bringup with the defaults
#   rover-entrypoint backend:=cpu_int8 record:=true   bringup with these arguments
#   rover-entrypoint ros2 topic hz /rover/cmd      any command, ROS sourced
#
# Launch arguments, later ones winning: backend:=$ROVER_BACKEND (the hailo
# image sets it), the command's NAME:=VALUE arguments (compose.yaml), then
# $ROVER_LAUNCH_ARGS (the user's, from /etc/rover/rover.env).
# With backend hailo, rover-check-hailort must pass first: a HailoRT library
# that does not match the host's driver stops here with one clear line (exit 78).
#
# Exit codes systemd must not restart (RestartPreventExitStatus=2 78): 2 for a
# configuration error (bad argument, no ROS 2, no workspace; the nodes and the
# launch file use 2 too), 78 for the HailoRT mismatch.
#
# `ros2 launch --noninteractive`: nobody is at a terminal here, so launch itself
# must pass SIGINT on to its nodes (interactive launch assumes the terminal sent
# it to the whole process group and only escalates to SIGTERM after 5 s). A stop
# signal to this script (SIGINT or SIGTERM, e.g. docker stop through tini, or
# systemd) reaches launch as SIGINT: the nodes stop in order (the bridge sends
# neutral to the Arduino first), and this script exits with launch's exit code.
set -eo pipefail

die() { echo "rover-entrypoint: $1" >&2; exit "${2:-2}"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROS_DISTRO=${ROS_DISTRO:-jazzy}
ROS_SETUP=${ROS_SETUP:-/opt/ros/${ROS_DISTRO}/setup.bash}
if [ -z "${ROVER_WS:-}" ]; then
    # the image's workspace, else the colcon install/ of the checkout this script is in
    if [ -f /opt/rover/ws/setup.bash ]; then ROVER_WS=/opt/rover/ws; else ROVER_WS=${here}/../install; fi
fi

[ -f "${ROS_SETUP}" ] || die "no ROS 2 at ${ROS_SETUP} (set ROS_SETUP, or install ros-${ROS_DISTRO}-ros-base)"
[ -f "${ROVER_WS}/setup.bash" ] || die "no workspace at ${ROVER_WS} (run colcon build, or set ROVER_WS)"
# setup.bash files read unset variables
set +u
# shellcheck disable=SC1090
source "${ROS_SETUP}"
# shellcheck disable=SC1091
source "${ROVER_WS}/setup.bash"

is_launch_arg() { [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*:= ]]; }

if [ "$#" -gt 0 ] && ! is_launch_arg "$1"; then
    exec "$@"
fi

launch_args=()
if [ -n "${ROVER_BACKEND:-}" ]; then launch_args+=("backend:=${ROVER_BACKEND}"); fi
launch_args+=("$@")
if [ -n "${ROVER_LAUNCH_ARGS:-}" ]; then
    read -r -a user_args <<< "${ROVER_LAUNCH_ARGS}"
    launch_args+=("${user_args[@]}")
fi
for arg in "${launch_args[@]}"; do
    is_launch_arg "${arg}" || die "'${arg}' is not a launch argument (NAME:=VALUE); see: ros2 launch rover bringup.launch.py --show-args"
done

backend=""
for arg in "${launch_args[@]}"; do
    case "${arg}" in backend:=*) backend=${arg#backend:=} ;; esac
done
if [ "${backend}" = "hailo" ]; then
    check=${ROVER_HAILO_CHECK:-$(command -v rover-check-hailort || echo "${here}/check_hailort.py")}
    "${check}" --print || exit 78
fi

echo "rover-entrypoint: ros2 launch --noninteractive rover bringup.launch.py ${launch_args[*]}"
# Not exec: this script stays launch's parent and turns SIGINT and SIGTERM alike into
# SIGINT for launch, whose shutdown passes it to every node, waits for them and
# escalates (SIGTERM after 5 s, SIGKILL after 5 more). A SIGTERM to launch itself
# would end it at once with its nodes still running, and in the container PID 1
# would then end and kill them in the middle of stopping. set -m: a background job
# of a script would otherwise start with SIGINT ignored.
set -m
ros2 launch --noninteractive rover bringup.launch.py "${launch_args[@]}" &
launch_pid=$!
trap 'kill -INT "${launch_pid}" 2>/dev/null || true' INT TERM
status=0
wait "${launch_pid}" || status=$?
while kill -0 "${launch_pid}" 2>/dev/null; do  # a stop signal interrupted the wait
    status=0
    wait "${launch_pid}" || status=$?
done
exit "${status}"
