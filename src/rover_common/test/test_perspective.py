"""The rqt perspective: generated per namespace, read back the way rqt's importer does."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rover_common.perspective import IMAGE_VIEW, PLOT, RUNTIME_MONITOR, perspective, prefix, render

REPO = Path(__file__).resolve().parents[3]


def load_like_qt_gui(node: dict) -> dict:
    """qt_gui's perspective import: nested keys/groups, values stored as repr()."""
    assert set(node) == {'keys', 'groups'}, node.keys()
    values = {}
    for key, value in node['keys'].items():
        assert value['type'] == 'repr', value
        values[key] = ast.literal_eval(value['repr'])
    return {'keys': values, 'groups': {name: load_like_qt_gui(g) for name, g in node['groups'].items()}}


def plugin_settings(data: dict):
    manager = load_like_qt_gui(data)['groups']['pluginmanager']
    running = manager['keys']['running-plugins']
    groups = manager['groups']
    # every running plugin has its settings group: plugin__<package>__<Class>__<instance>
    assert set(groups) == {f'plugin__{p.replace("/", "__")}__{i}' for p, ids in running.items() for i in ids}
    return running, {p: groups[f'plugin__{p.replace("/", "__")}__1']['groups'].get('plugin', {}).get('keys')
                     for p in running}


@pytest.mark.parametrize('namespace, ns', [('', ''), ('car1', '/car1'), ('/car2/', '/car2'), ('fleet/a', '/fleet/a')])
def test_topics_follow_the_namespace_and_the_image_is_the_compressed_one(namespace, ns):
    running, settings = plugin_settings(perspective(namespace))
    assert set(running) == {IMAGE_VIEW, PLOT, RUNTIME_MONITOR}
    # "<image topic>/compressed" is how rqt_image_view saves the compressed transport
    assert settings[IMAGE_VIEW]['topic'] == f'{ns}/camera/image_raw/compressed'
    assert settings[PLOT]['topics'] == [f'{ns}/rover/cmd/twist/angular/z', f'{ns}/rover/cmd/twist/linear/x',
                                        f'{ns}/rover/state/twist/angular/z', f'{ns}/rover/state/twist/linear/x']
    assert prefix(namespace) == ns


def test_the_shipped_perspective_is_the_generated_one_for_the_root_namespace():
    assert (REPO / 'config' / 'rover.perspective').read_text() == render(''), \
        'regenerate: python -m rover_common.perspective > config/rover.perspective'


def test_command_line_prints_the_perspective():
    result = subprocess.run([sys.executable, '-m', 'rover_common.perspective', '--namespace', 'car1'],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == render('car1')
