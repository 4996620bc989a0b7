#!/usr/bin/env bash
# The rover's on-device checklist: run once on the Pi after the host setup,
# as the user who drives the car (not with sudo), with the stack running:
#
#   sudo systemctl start rover && docker/pi_checklist.sh          # Docker
#   docker/pi_checklist.sh --native                              # rover-native@$USER
#
# It prints one line per check, PASS / FAIL / SKIP name: detail, then
# `checklist: N passed, N failed, N skipped`, and exits 1 when a check failed.
#   devices     /dev/rover_arduino and /dev/rover_camera exist and are usable
#   camera      640x360 at 30 fps offered (v4l2-ctl), captured (stack stopped),
#               published as camera/image_raw 640x360 at ~30 Hz (stack running)
#   arduino     the bridge's /diagnostics report the link OK (handshake done)
#   rover/cmd   `ros2 topic hz` ~ 30
#   hailo       hailortcli scan finds the device; library == driver version
#   benchmark   about 60 s of the installed model's inference, with the
#               p99 latency compared to half the time one action chunk lasts
#
# Options: --native, --hailo (default: on when ROVER_SERVICE=rover-hailo),
# --model-dir DIR (/opt/rover/models/current), --backend B (cpu_int8, or hailo
# with --hailo), --bench-seconds S (60), --no-bench, --bench-only, --namespace NS,
# --env-file FILE (/etc/rover/rover.env). ROVER_ARDUINO_DEV and ROVER_CAMERA_DEV
# name other device paths for the host-side checks.
# Docker mode runs ROS tools inside the container: the user needs to be allowed
# to use docker (group docker).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---------------------------------------------------------------- output
passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); echo "PASS $1: $2"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1: $2"; }
note() { echo "     $*"; }

# ---------------------------------------------------------------- parsing (stdin -> stdout, no side effects)

# v4l2_has_mode W H FPS < `v4l2-ctl --list-formats-ext`: some format offers WxH at >= FPS
v4l2_has_mode() {
    awk -v W="$1" -v H="$2" -v F="$3" '
        /\[[0-9]+\]: / { size_ok = 0; next }
        /Size: Discrete/ { split($3, s, "x"); size_ok = (s[1] == W && s[2] == H); next }
        /Size: (Stepwise|Continuous)/ {
            split($3, lo, "x"); split($5, hi, "x")
            size_ok = (W >= lo[1] && W <= hi[1] && H >= lo[2] && H <= hi[2]); next
        }
        /Interval:/ && size_ok {
            fps = $0; sub(/.*\(/, "", fps); sub(/ fps\).*/, "", fps)
            n = split(fps, range, "-"); best = range[n] + 0
            if (best >= F - 0.5) found = 1
        }
        END { exit found ? 0 : 1 }'
}

# hz_rate < `ros2 topic hz` output: the last average rate
hz_rate() {
    awk '/average rate:/ { rate = $3 } END { if (rate == "") exit 1; print rate }'
}

# bench_value KEY < a `bench NAME: key=value ...` line
bench_value() {
    awk -v K="$1" '{ for (i = 1; i <= NF; i++) if (index($i, K "=") == 1) { print substr($i, length(K) + 2); found = 1 } }
        END { exit found ? 0 : 1 }'
}

# in_range X LO HI: LO <= X <= HI (decimals)
in_range() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "" && x + 0 >= lo && x + 0 <= hi) }'; }

# v4l2_stream_fps < `v4l2-ctl --stream-mmap ...` stderr: the last "NN.NN fps" it printed
v4l2_stream_fps() {
    tr '\r' '\n' | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^fps,?$/ && $(i - 1) ~ /^[0-9.]+$/) fps = $(i - 1) }
        END { if (fps == "") exit 1; print fps }'
}

# bench_iterations MEAN_MS SECONDS: iterations that take about SECONDS, 20..1800
bench_iterations() {
    awk -v m="$1" -v s="$2" 'BEGIN { n = (m > 0) ? int(s * 1000 / m) : 20; if (n < 20) n = 20; if (n > 1800) n = 1800; print n }'
}

# Expected inference latency on a Pi 5: ESTIMATES from the model's size, not
# measurements (no Pi was available); see docker/README.md for how they were made.
expected_latency() {
    case "$1" in
        cpu_int8) echo "p50 about 110-250 ms (4 threads)" ;;
        cpu_fp32) echo "p50 about 270-550 ms (4 threads)" ;;
        hailo) echo "p50 about 210-450 ms (backbone on the NPU ~10-20 ms, FP32 head on 2 CPU threads)" ;;
        *) echo "unknown backend" ;;
    esac
}

# ---------------------------------------------------------------- running ROS tools

compose() {
    local env_args=()
    [ -r "${env_file}" ] && env_args=(--env-file "${env_file}")
    docker compose --ansi never --project-name rover --file "${repo}/docker/compose.yaml" "${env_args[@]}" "$@"
}

# ros_exec CMD...: in the running stack's environment
ros_exec() {
    if [ "${mode}" = docker ]; then
        compose exec -T "${service}" rover-entrypoint "$@"
    else
        bash "${repo}/docker/rover-entrypoint.sh" "$@"
    fi
}

# ros_run CMD...: in a fresh container (Docker) or the native environment
ros_run() {
    if [ "${mode}" = docker ]; then
        compose run --rm --no-deps -T "${service}" "$@"
    else
        bash "${repo}/docker/rover-entrypoint.sh" "$@"
    fi
}

# (output captured first: `cmd | grep -q` can fail under pipefail when grep exits early)
stack_running() {
    local out
    if [ "${mode}" = docker ]; then
        out=$(compose ps --status running --services 2>/dev/null)
        grep -qx "${service}" <<< "${out}"
    else
        out=$(ros_exec timeout 15 ros2 node list 2>/dev/null)
        grep -q '/policy$' <<< "${out}"
    fi
}

topic() { if [ -n "${namespace}" ]; then echo "/${namespace}/$1"; else echo "/$1"; fi; }

DIAG_PY='
import sys, time
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
match = sys.argv[1].lower()
rclpy.init()
node = rclpy.create_node("rover_checklist_diagnostics")
seen, first = {}, [None]
def on_array(msg):
    for status in msg.status:
        if match in status.name.lower() or match in status.hardware_id.lower():
            seen[status.name] = status
            first[0] = first[0] or time.monotonic()
node.create_subscription(DiagnosticArray, "/diagnostics", on_array, 50)
deadline = time.monotonic() + 10.0
while time.monotonic() < deadline and not (first[0] and time.monotonic() - first[0] > 2.5):
    rclpy.spin_once(node, timeout_sec=0.2)
worst = 0
for name, status in sorted(seen.items()):
    level = status.level[0] if isinstance(status.level, (bytes, bytearray)) else int(status.level)
    worst = max(worst, level)
    values = " ".join(f"{kv.key}={kv.value}" for kv in status.values)
    print(f"level={level} {name}: {status.message} {values}".rstrip())
node.destroy_node()
rclpy.shutdown()
sys.exit(3 if not seen else (0 if worst == 0 else 1))
'

# ---------------------------------------------------------------- checks

check_devices() {
    if [ -f /etc/udev/rules.d/99-rover.rules ]; then
        pass "udev rules" "/etc/udev/rules.d/99-rover.rules installed"
    else
        fail "udev rules" "/etc/udev/rules.d/99-rover.rules missing: sudo docker/install_host.sh"
    fi
    local name dev
    for name in arduino camera; do
        if [ "${name}" = arduino ]; then dev=${arduino_dev}; else dev=${camera_dev}; fi
        if [ ! -e "${dev}" ]; then
            fail "${name} device" "${dev} missing: plugged in? udevadm info --attribute-walk on its ttyACM*/ttyUSB*/video* node, see 99-rover.rules"
        elif [ ! -c "${dev}" ]; then
            fail "${name} device" "${dev} is not a character device"
        elif [ ! -r "${dev}" ] || [ ! -w "${dev}" ]; then
            fail "${name} device" "${dev} -> $(readlink -f "${dev}") not read/writable by $(id -un) (groups: $(id -Gn)); log in again after install_host.sh"
        else
            pass "${name} device" "${dev} -> $(readlink -f "${dev}")"
        fi
    done
}

v4l2_ctl() {
    if command -v v4l2-ctl >/dev/null; then v4l2-ctl "$@"
    elif [ "${mode}" = docker ]; then ros_run v4l2-ctl "$@"
    else return 127; fi
}

check_camera_device() {
    local formats
    if [ ! -e "${camera_dev}" ]; then
        skip "camera 640x360@30" "no ${camera_dev}"
        return
    fi
    if ! formats=$(v4l2_ctl --device "${camera_dev}" --list-formats-ext 2>&1); then
        fail "camera 640x360@30" "v4l2-ctl --list-formats-ext failed (sudo apt install v4l-utils): ${formats##*$'\n'}"
        return
    fi
    if v4l2_has_mode 640 360 30 <<< "${formats}"; then
        pass "camera 640x360@30" "offered by the camera (v4l2-ctl --list-formats-ext)"
    else
        fail "camera 640x360@30" "not offered; sizes: $(grep -o 'Discrete [0-9]*x[0-9]*' <<< "${formats}" | sort -u | cut -d' ' -f2 | tr '\n' ' ')"
        return
    fi
    if [ "${running}" -eq 1 ]; then
        skip "camera capture" "the stack holds the camera; the camera/image_raw checks below measure it"
        return
    fi
    local out fps
    out=$(v4l2_ctl --device "${camera_dev}" --set-fmt-video=width=640,height=360 --set-parm=30 \
          --stream-mmap=4 --stream-count=150 --stream-to=/dev/null 2>&1)
    if fps=$(v4l2_stream_fps <<< "${out}") && in_range "${fps}" 28.5 31.5; then
        pass "camera capture" "${fps} fps at 640x360 (150 frames, v4l2-ctl)"
    else
        fail "camera capture" "expected ~30 fps at 640x360, got '${fps:-none}': ${out##*$'\n'}"
    fi
}

check_stack() {
    local out rate width height
    out=$(ros_exec timeout 15 ros2 topic echo --once --no-arr "$(topic camera/image_raw)" 2>&1)
    width=$(awk '/^width:/ { print $2; exit }' <<< "${out}")
    height=$(awk '/^height:/ { print $2; exit }' <<< "${out}")
    if [ "${width}x${height}" = 640x360 ]; then
        pass "camera image" "$(topic camera/image_raw) is 640x360"
    else
        fail "camera image" "$(topic camera/image_raw): expected 640x360, got '${width}x${height}' ${out##*$'\n'}"
    fi

    out=$(ros_exec timeout -s INT 12 ros2 topic hz --window 100 "$(topic camera/image_raw)" 2>&1)
    if rate=$(hz_rate <<< "${out}") && in_range "${rate}" 28 32; then
        pass "camera rate" "$(topic camera/image_raw) at ${rate} Hz"
    else
        fail "camera rate" "$(topic camera/image_raw): expected ~30 Hz, got '${rate:-no messages}'"
    fi

    out=$(ros_exec timeout -s INT 12 ros2 topic hz --window 100 "$(topic rover/cmd)" 2>&1)
    if rate=$(hz_rate <<< "${out}") && in_range "${rate}" 29 31; then
        pass "rover/cmd rate" "$(topic rover/cmd) at ${rate} Hz"
    else
        fail "rover/cmd rate" "$(topic rover/cmd): expected ~30 Hz, got '${rate:-no messages}'"
    fi

    local status
    out=$(ros_exec python3 -c "${DIAG_PY}" "${BRIDGE_DIAG_MATCH:-bridge}" 2>&1)
    status=$?
    case "${status}" in
        0) pass "arduino handshake" "bridge diagnostics OK" ;;
        3) fail "arduino handshake" "no /diagnostics status naming '${BRIDGE_DIAG_MATCH:-bridge}' in 10 s: is the bridge running?" ;;
        *) fail "arduino handshake" "bridge diagnostics not OK (firmware flashed? cable? src/rover_bridge/PROTOCOL.md)" ;;
    esac
    while IFS= read -r line; do [ -n "${line}" ] && note "${line}"; done <<< "${out}"
}

check_hailo() {
    local out
    if command -v hailortcli >/dev/null; then
        out=$(hailortcli scan 2>&1)
    elif [ "${mode}" = docker ]; then
        out=$(ros_run hailortcli scan 2>&1)
    else
        fail "hailo scan" "hailortcli not found: install HailoRT (docker/README.md, Hailo variant)"
        out=""
    fi
    if [ -n "${out}" ]; then
        if grep -q 'Device:' <<< "${out}"; then
            pass "hailo scan" "$(grep -m1 'Device:' <<< "${out}" | sed 's/^[^D]*//')"
        else
            fail "hailo scan" "no Hailo device (PCIe enabled? dtparam=pciex1 in /boot/firmware/config.txt; lsmod | grep hailo): ${out##*$'\n'}"
        fi
    fi
    local check=(python3 "${repo}/docker/check_hailort.py" --print) status
    if [ "${mode}" = docker ]; then check=(rover-check-hailort --print); fi
    if [ "${running}" -eq 1 ]; then
        out=$(ros_exec "${check[@]}" 2>&1); status=$?
    else
        out=$(ros_run "${check[@]}" 2>&1); status=$?
    fi
    if [ "${status}" -eq 0 ]; then
        pass "hailo versions" "${out##*$'\n'}"
    else
        fail "hailo versions" "${out##*$'\n'}"
    fi
}

check_benchmark() {
    if [ "${backend}" = hailo ] && [ "${running}" -eq 1 ]; then
        skip "benchmark" "the running policy holds the Hailo device: sudo systemctl stop rover, then $0 --bench-only"
        return
    fi
    if [ "${running}" -eq 1 ]; then
        note "the stack is running and shares the CPU: figures are pessimistic (stop it for clean ones)"
    fi
    local threads=4 out budget mean iterations line p99
    if [ "${backend}" = hailo ]; then threads=2; fi
    out=$(ros_run python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
print(round(0.5 * m["n_action_steps"] / m["control_rate_hz"] * 1000))' "${model_dir}" 2>&1)
    if ! budget=$(grep -Ex '[0-9]+' <<< "${out}"); then
        fail "benchmark" "cannot read ${model_dir}/manifest.json (model installed? ln -sfn <name> /opt/rover/models/current): ${out##*$'\n'}"
        return
    fi
    local bench=(ros2 run rover_policy latency_benchmark --model-dir "${model_dir}" --backend "${backend}" --threads "${threads}")
    out=$(ros_run "${bench[@]}" --iterations 10 --warmup 3 2>&1)
    if ! mean=$(grep '^bench ' <<< "${out}" | bench_value mean_ms); then
        fail "benchmark" "the policy benchmark did not run: ${out##*$'\n'}"
        return
    fi
    iterations=$(bench_iterations "${mean}" "${bench_seconds}")
    note "benchmark: ${iterations} iterations of ${backend} (~${bench_seconds} s at ${mean} ms)"
    out=$(ros_run "${bench[@]}" --iterations "${iterations}" --warmup 5 2>&1)
    if ! line=$(grep '^bench ' <<< "${out}"); then
        fail "benchmark" "the policy benchmark failed: ${out##*$'\n'}"
        return
    fi
    note "${line}"
    note "expected on a Pi 5 (estimate, not a measurement): $(expected_latency "${backend}")"
    p99=$(bench_value p99_ms <<< "${line}")
    if in_range "${p99}" 0 "${budget}"; then
        pass "benchmark" "${backend} p99 ${p99} ms <= ${budget} ms (half an action chunk)"
    else
        fail "benchmark" "${backend} p99 ${p99} ms > ${budget} ms: a new chunk would not arrive before half the current one has played"
    fi
}

# ---------------------------------------------------------------- main

main() {
    mode=docker
    hailo=""
    model_dir=/opt/rover/models/current
    backend=""
    bench_seconds=60
    do_bench=1
    only_bench=0
    namespace=""
    env_file=/etc/rover/rover.env
    arduino_dev=${ROVER_ARDUINO_DEV:-/dev/rover_arduino}
    camera_dev=${ROVER_CAMERA_DEV:-/dev/rover_camera}
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --native) mode=native ;;
            --docker) mode=docker ;;
            --hailo) hailo=1 ;;
            --model-dir) model_dir=$2; shift ;;
            --backend) backend=$2; shift ;;
            --bench-seconds) bench_seconds=$2; shift ;;
            --no-bench) do_bench=0 ;;
            --bench-only) only_bench=1 ;;
            --namespace) namespace=${2#/}; shift ;;
            --env-file) env_file=$2; shift ;;
            -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; return 0 ;;
            *) echo "pi_checklist: unknown option $1 (see --help)" >&2; return 2 ;;
        esac
        shift
    done
    if [ -r "${env_file}" ]; then
        set -a
        # shellcheck disable=SC1090
        source "${env_file}"
        set +a
    fi
    repo=${ROVER_REPO:-$(cd "${here}/.." && pwd)}
    service=${ROVER_SERVICE:-rover}
    if [ -z "${hailo}" ]; then
        if [ "${service}" = rover-hailo ]; then hailo=1; else hailo=0; fi
    fi
    if [ "${hailo}" -eq 1 ] && [ "${mode}" = docker ]; then service=rover-hailo; fi
    if [ -z "${backend}" ]; then
        if [ "${hailo}" -eq 1 ]; then backend=hailo; else backend=cpu_int8; fi
    fi
    if [ "${mode}" = docker ] && ! docker compose version >/dev/null 2>&1; then
        echo "pi_checklist: 'docker compose' is not usable by $(id -un) (installed? in group docker?); or use --native" >&2
        return 2
    fi

    running=0
    if stack_running; then running=1; fi
    if [ "${only_bench}" -eq 0 ]; then
        check_devices
        check_camera_device
        if [ "${running}" -eq 1 ]; then
            check_stack
        else
            skip "stack" "not running (sudo systemctl start rover): camera image/rate, rover/cmd rate, arduino handshake not checked"
        fi
        if [ "${hailo}" -eq 1 ]; then check_hailo; fi
    fi
    if [ "${do_bench}" -eq 1 ]; then check_benchmark; else skip "benchmark" "--no-bench"; fi

    echo "checklist: ${passed} passed, ${failed} failed, ${skipped} skipped"
    [ "${failed}" -eq 0 ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
