"""`make bench`: every benchmark, one after the other, one summary line each.

Each benchmark runs in its own process so one's threads and DDS participants
cannot disturb the next; their `bench NAME: ...` lines are collected and
repeated at the end. BENCH=camera,serial runs a subset.
"""
import os
import subprocess
import sys

from rover_common.ros_env import localhost_env

BENCHMARKS = {
    'camera': 'rover_camera.bench',
    'serial': 'rover_bridge.bench',
    'quantize': 'rover_quantize.bench',
    'roofline': 'rover_quantize.roofline',
    'control': 'rover_policy.bench',
}


def main() -> int:
    wanted = [b for b in os.environ.get('BENCH', ','.join(BENCHMARKS)).split(',') if b]
    unknown = set(wanted) - set(BENCHMARKS)
    if unknown:
        print(f'unknown benchmark(s): {", ".join(sorted(unknown))}; known: {", ".join(BENCHMARKS)}')
        return 2
    lines, failed = [], []
    for name in wanted:
        print(f'--- {name} ({BENCHMARKS[name]})', flush=True)
        proc = subprocess.run([sys.executable, '-m', BENCHMARKS[name]], env=localhost_env(),
                              stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        lines += [line for line in proc.stdout.splitlines() if line.startswith('bench ')]
        if proc.returncode != 0:
            failed.append(name)
    print('=== summary')
    print('\n'.join(lines))
    if failed:
        print(f'failed: {", ".join(failed)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
