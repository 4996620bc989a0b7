"""Declare parameters with descriptors (description and range) in one line each.

One rule for every node: a float parameter also accepts an integer (`fps: 30`
in YAML, `rate_hz:=30` on the command line), at start and at run time, and
its range is checked either way. (ROS types a parameter by its default, so a
plain float parameter refuses `30`; an integer given to a range-checked float
would skip rclpy's own range check.)
"""
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult

_FLOAT_RANGES = '_rover_float_parameters'   # node attribute: name -> (min, max) of float parameters


def checked_float(name, value, min_value=None, max_value=None) -> float:
    """`value` as a float within [min_value, max_value]; ValueError with the reason otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'parameter {name}={value!r} must be a number')
    value = float(value)
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        low = '-inf' if min_value is None else f'{min_value:g}'
        high = 'inf' if max_value is None else f'{max_value:g}'
        raise ValueError(f'parameter {name}={value:g} is out of range [{low}, {high}]')
    return value


def _float_guard(node) -> dict:
    ranges = getattr(node, _FLOAT_RANGES, None)
    if ranges is None:
        ranges = {}
        setattr(node, _FLOAT_RANGES, ranges)

        def check(params):
            for param in params:
                if param.name in ranges:
                    try:
                        checked_float(param.name, param.value, *ranges[param.name])
                    except ValueError as exc:
                        return SetParametersResult(successful=False, reason=str(exc))
            return SetParametersResult(successful=True)
        node.add_on_set_parameters_callback(check)
    return ranges


def declare(node, name, default, description, *, min_value=None, max_value=None,
            step=None, choices=None, read_only=False, dynamic_typing=False):
    """Declare `name` on `node` with a descriptor and return its value.

    Ranges become FloatingPointRange/IntegerRange so rqt and `ros2 param
    describe` show them. Float parameters are declared with dynamic typing so
    an integer is accepted; their type and range are checked here (start: a
    ValueError, which node_main turns into exit code 2) and on every change.
    `choices` is documented in the description (ROS has no enum descriptor).
    """
    text = description
    if choices:
        text += ' One of: ' + ', '.join(str(c) for c in choices) + '.'
    is_float = isinstance(default, float)
    descriptor = ParameterDescriptor(
        name=name, description=text, read_only=read_only, dynamic_typing=dynamic_typing or is_float)
    if min_value is not None or max_value is not None:
        if isinstance(default, bool):
            raise TypeError(f'parameter {name}: a bool has no range')
        if isinstance(default, int):
            descriptor.integer_range = [IntegerRange(
                from_value=int(min_value), to_value=int(max_value), step=int(step or 0))]
        else:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(min_value), to_value=float(max_value), step=float(step or 0.0))]
    value = node.declare_parameter(name, default, descriptor).value
    if is_float:
        value = checked_float(name, value, min_value, max_value)
        _float_guard(node)[name] = (min_value, max_value)
    if choices and value not in choices:
        raise ValueError(
            f'parameter {name}={value!r} is not one of {", ".join(map(str, choices))}')
    return value
