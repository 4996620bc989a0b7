"""The policy node with its test and benchmark knobs, off the production parameter list.

`python -m rover_policy.instrumented_node` is PolicyNode plus two parameters
the tests and `bench control` need and a car never should (the node the
launch files and the demo start does not declare them, so a stray
`ros2 param set /policy inject_delay_ms ...` is refused there):

| name | default | |
| --- | --- | --- |
| `inject_delay_ms` | 0 | extra sleep per inference (a slow backend); changeable at run time |
| `timing_log` | `''` | per-tick/per-chunk timing records as JSON lines (rover_policy.timing_log) |
"""
import sys

from rover_common.node_main import run
from rover_common.params import declare
from rover_policy.policy_node import PolicyNode


class InstrumentedPolicyNode(PolicyNode):
    def _instrumentation(self) -> tuple[int, str]:
        inject_delay_ms = declare(self, 'inject_delay_ms', 0, 'Test/benchmark only: extra sleep (ms) '
                                  'after each inference to simulate a slow backend.',
                                  min_value=0, max_value=10000)
        timing_log = declare(self, 'timing_log', '', 'Benchmark only: write per-tick and per-chunk '
                             'timing records (JSON lines) to this file.', read_only=True)
        return inject_delay_ms, timing_log

    def _apply_parameters(self, params) -> None:
        super()._apply_parameters(params)
        for param in params:
            if param.name == 'inject_delay_ms':
                self._worker.inject_delay_s = param.value / 1000.0


def main(args=None):
    sys.exit(run(InstrumentedPolicyNode, args=args))


if __name__ == '__main__':
    main()
