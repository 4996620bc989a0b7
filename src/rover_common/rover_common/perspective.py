"""The rqt perspective for one rover, generated for its namespace.

    python3 -m rover_common.perspective --namespace car1 > car1.perspective
    rqt --perspective-file car1.perspective

Shows the camera's compressed image (JPEG: a fraction of the raw topic's
20 MB/s, which matters over WiFi), a plot of the commanded and applied steering
and throttle, and the runtime monitor of /diagnostics (whose status names carry
the namespace). config/rover.perspective is this output for the root namespace.

The file is what rqt's "Perspectives > Export" writes (qt_gui's JSON: nested
"keys"/"groups", each value {"type": "repr", "repr": repr(value)}), so rqt's
importer reads it back.
"""
import argparse
import json

IMAGE_VIEW = 'rqt_image_view/ImageView'
PLOT = 'rqt_plot/Plot'
RUNTIME_MONITOR = 'rqt_runtime_monitor/RuntimeMonitor'


def prefix(namespace: str) -> str:
    """'' for the root namespace, else '/car1' (leading slash, none at the end)."""
    namespace = namespace.strip().strip('/')
    return f'/{namespace}' if namespace else ''


def _settings(values: dict) -> dict:
    return {'keys': {k: {'type': 'repr', 'repr': repr(v)} for k, v in values.items()}, 'groups': {}}


def perspective(namespace: str = '') -> dict:
    ns = prefix(namespace)
    # rqt_image_view stores the combo box text: "<image topic>/<transport>" selects that transport
    image_view = {'topic': f'{ns}/camera/image_raw/compressed', 'zoom1': False, 'dynamic_range': False,
                  'max_range': 10.0, 'smooth_image': False, 'rotate': 0, 'toolbar_hidden': False,
                  'num_gridlines': 0, 'publish_click_location': False, 'mouse_pub_topic': ''}
    # steering is angular.z, throttle linear.x (the README's topic table)
    plot = {'topics': [f'{ns}/{topic}/twist/{axis}' for topic in ('rover/cmd', 'rover/state')
                       for axis in ('angular/z', 'linear/x')],
            'autoscroll': True, 'plot_type': 1, 'x_limits': ['0', '10'], 'y_limits': ['-1.1', '1.1']}
    plugins = {IMAGE_VIEW: image_view, PLOT: plot, RUNTIME_MONITOR: None}
    groups = {}
    for plugin, values in plugins.items():
        group = {'keys': {}, 'groups': {}}
        if values is not None:
            group['groups']['plugin'] = _settings(values)
        groups['plugin__' + plugin.replace('/', '__') + '__1'] = group
    running = {plugin: [1] for plugin in plugins}
    return {'keys': {}, 'groups': {'pluginmanager': {
        'keys': {'running-plugins': {'type': 'repr', 'repr': repr(running)}}, 'groups': groups}}}


def render(namespace: str = '') -> str:
    return json.dumps(perspective(namespace), indent=2) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Print the rqt perspective of a rover in a namespace.')
    parser.add_argument('--namespace', default='', help='the launch namespace, e.g. car1 (default: none)')
    print(render(parser.parse_args(argv).namespace), end='')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
