#!/usr/bin/env bash
# Host setup for the rover on a Raspberry Pi 5 (docker/README.md, "Host setup"):
# udev rules, groups, /opt/rover folders, /etc/rover/rover.env and the systemd unit.
#
#   sudo docker/install_host.sh                  # Docker: rover.service (compose service rover)
#   sudo docker/install_host.sh --hailo          # Docker: rover.service running rover-hailo
#   sudo docker/install_host.sh --native         # no Docker: rover-native@<user>.service
#
# Options: --user NAME (default: the user who ran sudo) owns the folders and is
# the container's uid; --force-env rewrites an existing /etc/rover/rover.env
# (otherwise it is kept, with the keys it lacks added); --root DIR writes every
# file under DIR and changes nothing else on the system (to review the result).
# It enables the unit but does not start it: build the images first.
set -euo pipefail

die() { echo "install_host: error: $*" >&2; exit 1; }
say() { echo "install_host: $*"; }

mode=docker
hailo=0
target_user=${SUDO_USER:-$(id -un)}
root=""
force_env=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --docker) mode=docker ;;
        --native) mode=native ;;
        --hailo) hailo=1 ;;
        --user) target_user=${2:?--user needs a name}; shift ;;
        --root) root=${2:?--root needs a directory}; shift ;;
        --force-env) force_env=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
docker_dir=${repo}/docker
[ -n "${root}" ] || [ "$(id -u)" -eq 0 ] || die "run it with sudo (or --root DIR to only write files)"
if [ -n "${root}" ]; then root=$(mkdir -p "${root}" && cd "${root}" && pwd); fi

# Commands that change the running system are skipped with --root.
system() {
    if [ -n "${root}" ]; then say "skipped (--root): $*"; else "$@"; fi
}

user_uid=$(id -u "${target_user}") || die "no user ${target_user}"
group_id() { getent group "$1" | cut -d: -f3; }
dialout_gid=$(group_id dialout)
video_gid=$(group_id video)
if [ -z "${dialout_gid}" ] || [ -z "${video_gid}" ]; then die "groups dialout and video must exist"; fi

# udev: stable names and group access for the Arduino, the camera and the Hailo device
install -D -m 0644 "${docker_dir}/99-rover.rules" "${root}/etc/udev/rules.d/99-rover.rules"
say "installed /etc/udev/rules.d/99-rover.rules"
system udevadm control --reload-rules
system udevadm trigger --subsystem-match=tty --subsystem-match=video4linux --subsystem-match=hailo_chardev
system usermod -aG dialout,video "${target_user}"

# folders the container mounts; the container user (same uid) writes bags, logs and the e-stop latch
for dir in models bags logs state hailo_pkgs; do
    install -d -m 0755 "${root}/opt/rover/${dir}"
    system chown "${target_user}:" "${root}/opt/rover/${dir}"
done

# the driver version the image's HailoRT must match (empty without a Hailo driver)
hailort_host_version=""
if [ -r /sys/module/hailo_pci/version ]; then
    hailort_host_version=$(cat /sys/module/hailo_pci/version)
elif command -v modinfo >/dev/null && modinfo -F version hailo_pci >/dev/null 2>&1; then
    hailort_host_version=$(modinfo -F version hailo_pci)
fi
if [ "${hailo}" -eq 1 ] && [ -z "${hailort_host_version}" ]; then
    say "warning: no hailo_pci driver found; install it (docker/README.md, Hailo variant) and run this again"
fi

# /etc/rover/rover.env: keep the user's edits unless --force-env
env_file=${root}/etc/rover/rover.env
install -d -m 0755 "${root}/etc/rover"
if [ ! -f "${env_file}" ] || [ "${force_env}" -eq 1 ]; then
    install -m 0644 "${docker_dir}/rover.env.example" "${env_file}"
    fresh=1
else
    say "kept ${env_file} (--force-env rewrites it)"
    fresh=0
fi
# set_env KEY VALUE: on a fresh file always; on a kept one only keys it lacks
set_env() {
    local key=$1 value=$2
    if grep -q "^${key}=" "${env_file}"; then
        [ "${fresh}" -eq 1 ] || return 0
        KEY=${key} VALUE=${value} awk -F= 'BEGIN { OFS = "=" }
            $1 == ENVIRON["KEY"] { print ENVIRON["KEY"], ENVIRON["VALUE"]; next } { print }' \
            "${env_file}" > "${env_file}.new"
        mv "${env_file}.new" "${env_file}"
    else
        printf '%s=%s\n' "${key}" "${value}" >> "${env_file}"
    fi
}
if [ "${hailo}" -eq 1 ]; then service=rover-hailo; profiles=hailo; else service=rover; profiles=""; fi
set_env ROVER_REPO "${repo}"
set_env ROVER_SERVICE "${service}"
set_env COMPOSE_PROFILES "${profiles}"
set_env ROVER_UID "${user_uid}"
set_env DIALOUT_GID "${dialout_gid}"
set_env VIDEO_GID "${video_gid}"
set_env HAILO_GID "${video_gid}"
set_env HAILORT_HOST_VERSION "${hailort_host_version}"
if [ "${mode}" = native ] && [ "${hailo}" -eq 1 ]; then
    set_env ROVER_LAUNCH_ARGS "backend:=hailo"
fi
say "wrote ${env_file#"${root}"}"

# systemd
if [ "${mode}" = docker ]; then
    unit=rover.service
    install -D -m 0644 "${docker_dir}/systemd/rover.service" "${root}/etc/systemd/system/rover.service"
    if [ -z "${root}" ] && ! docker compose version >/dev/null 2>&1; then
        say "warning: 'docker compose' not found: install Docker Engine with the compose plugin (docker/README.md)"
    fi
else
    unit=rover-native@${target_user}.service
    install -D -m 0644 "${docker_dir}/systemd/rover-native@.service" "${root}/etc/systemd/system/rover-native@.service"
fi
system systemctl daemon-reload
system systemctl enable "${unit}"
say "enabled ${unit} (not started)"

if [ "${mode}" = docker ]; then
    compose="docker compose -f ${docker_dir}/compose.yaml --env-file /etc/rover/rover.env"
    cat <<EOF
Next:
  1. log out and in again (groups dialout, video for ${target_user})
  2. check the names:  ls -l /dev/rover_arduino /dev/rover_camera
  3. build the image:  ${compose} build ${service}
  4. install a model:  /opt/rover/models/<name>/ and ln -sfn <name> /opt/rover/models/current
  5. start:            sudo systemctl start ${unit}; journalctl -u rover -f
  6. checklist:        ${docker_dir}/pi_checklist.sh
EOF
else
    cat <<EOF
Next:
  1. log out and in again (groups dialout, video for ${target_user})
  2. check the names:  ls -l /dev/rover_arduino /dev/rover_camera
  3. build:            cd ${repo} && colcon build --base-paths src --packages-skip rover_quantize
  4. install a model:  /opt/rover/models/<name>/ and ln -sfn <name> /opt/rover/models/current
  5. start:            sudo systemctl start ${unit}; journalctl -u ${unit} -f
  6. checklist:        ${docker_dir}/pi_checklist.sh --native
EOF
fi
