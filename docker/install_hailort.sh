#!/usr/bin/env bash
# Install HailoRT into the hailo image from files the user downloaded from
# Hailo's Developer Zone (nothing is fetched from Hailo here):
#   hailort_<ver>_arm64.deb                      libhailort + hailortcli
#   hailort-<ver>-cp312-cp312-linux_aarch64.whl  the Python API (hailo_platform)
# <ver> must be the version of the host's hailo_pci driver (docker/README.md).
# Usage (inside the Docker build): install_hailort.sh DIR
set -euo pipefail

die() { echo "install_hailort: error: $*" >&2; exit 1; }

pkgs_dir=${1:?usage: install_hailort.sh DIR}
python_tag="cp$(python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
how="Put exactly one hailort_<ver>_arm64.deb and one hailort-<ver>-${python_tag}-${python_tag}-linux_aarch64.whl \
(the version of the host's driver: cat /sys/module/hailo_pci/version) in a directory and build with \
--build-context hailo_pkgs=DIR (compose: HAILO_PKGS_DIR=DIR). For the CPU-only image use --target runtime."

shopt -s nullglob
wheels=("${pkgs_dir}"/hailort-*.whl)
debs=("${pkgs_dir}"/hailort_*_arm64.deb)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || die "found ${#wheels[@]} hailort wheels in the hailo_pkgs context. ${how}"
[ "${#debs[@]}" -eq 1 ] || die "found ${#debs[@]} hailort_*_arm64.deb in the hailo_pkgs context. ${how}"
wheel=${wheels[0]}
deb=${debs[0]}

wheel_name=$(basename "${wheel}")
case "${wheel_name}" in
    hailort-*-"${python_tag}"-"${python_tag}"-linux_aarch64.whl) ;;
    *) die "${wheel_name} is not for this image (Python ${python_tag}, linux_aarch64). ${how}" ;;
esac
wheel_version=${wheel_name#hailort-}
wheel_version=${wheel_version%%-*}
deb_version=$(dpkg-deb --field "${deb}" Version)
deb_version=${deb_version%%-*}
[ "${wheel_version}" = "${deb_version}" ] \
    || die "the wheel is HailoRT ${wheel_version} but the .deb is ${deb_version}; both must be the host driver's version"

# The .deb's maintainer scripts start services and build drivers, which belong
# to the host: unpack its files only.
dpkg-deb --extract "${deb}" /
ldconfig

# The wheel pins dependencies that would replace apt's numpy (OpenCV and ROS use
# it), so it goes in with --no-deps; its other requirements come from apt when
# Ubuntu has them, and the import check below proves nothing is missing.
mapfile -t requirements < <(python3 - "${wheel}" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    metadata = next(n for n in wheel.namelist() if n.endswith('.dist-info/METADATA'))
    for line in wheel.read(metadata).decode().splitlines():
        if line.startswith('Requires-Dist:'):
            spec = line.split(':', 1)[1].split(';', 1)[0]
            name = re.split(r'[\s<>=!~\[(]', spec.strip(), maxsplit=1)[0].lower()
            if name and name != 'numpy':
                print(name)
PY
)
apt_packages=()
if [ "${#requirements[@]}" -gt 0 ]; then
    apt-get update
    for name in "${requirements[@]}"; do
        candidate="python3-${name//_/-}"
        if apt-cache show "${candidate}" >/dev/null 2>&1; then
            apt_packages+=("${candidate}")
        else
            echo "install_hailort: note: no apt package for '${name}'; the import check decides whether it is needed"
        fi
    done
    if [ "${#apt_packages[@]}" -gt 0 ]; then
        apt-get install -y --no-install-recommends "${apt_packages[@]}"
    fi
    rm -rf /var/lib/apt/lists/*
fi
# The HailoRT 4.x wheel is built against numpy 1.x: apt's numpy (1.26 on Ubuntu 24.04) qualifies.
numpy_version=$(python3 -c 'import numpy; print(numpy.__version__)')
[ "${numpy_version%%.*}" -lt 2 ] \
    || die "numpy ${numpy_version} is installed; the HailoRT wheel needs numpy < 2 (keep apt's python3-numpy)"
pip3 install --no-cache-dir --break-system-packages --no-deps "${wheel}"

library_version=$(python3 -c 'import hailo_platform; print(hailo_platform.__version__)') \
    || die "import hailo_platform failed (see above): a missing module must be added to the image"
[ "${library_version}" = "${wheel_version}" ] \
    || die "hailo_platform reports ${library_version}, expected ${wheel_version}"
hailortcli --version
mkdir -p /opt/rover
echo "${wheel_version}" > /opt/rover/hailort-version
echo "install_hailort: HailoRT ${wheel_version} installed (library, hailortcli, Python API)"
