"""Declare parameters with descriptors (description and range) in one line each."""
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def declare(node, name, default, description, *, min_value=None, max_value=None,
            step=None, choices=None, read_only=False, dynamic_typing=False):
    """Declare `name` on `node` with a descriptor and return its value.

    Ranges become FloatingPointRange/IntegerRange so rqt and `ros2 param
    describe` show them; rclpy then rejects out-of-range values itself.
    `choices` is documented in the description (ROS has no enum descriptor).
    """
    text = description
    if choices:
        text += ' One of: ' + ', '.join(str(c) for c in choices) + '.'
    descriptor = ParameterDescriptor(
        name=name, description=text, read_only=read_only, dynamic_typing=dynamic_typing)
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
    if choices and value not in choices:
        raise ValueError(
            f'parameter {name}={value!r} is not one of {", ".join(map(str, choices))}')
    return value
