"""Build diagnostic_msgs/DiagnosticStatus without repeating the boilerplate."""
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE


def _fmt(value) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)


def status(name: str, level, message: str, values: dict, hardware_id: str = '') -> DiagnosticStatus:
    return DiagnosticStatus(
        level=bytes([level]) if isinstance(level, int) else level,
        name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()])


def status_name(node, task: str) -> str:
    """`<namespace>/<node>: <task>`, so two namespaced cars on one network do not collide
    (the root namespace gives `<node>: <task>`, as before)."""
    return f'{node.get_fully_qualified_name().lstrip("/")}: {task}'


def array(node, *statuses: DiagnosticStatus) -> DiagnosticArray:
    msg = DiagnosticArray(status=list(statuses))
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


def level_value(level) -> int:
    """DiagnosticStatus.level is a byte in rclpy; this returns it as an int."""
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)
