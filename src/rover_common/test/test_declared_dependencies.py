"""Every import of a package is declared in its package.xml, so rosdep installs it.

Package code needs an exec_depend (or depend); test code may also use a
test_depend. Modules with no rosdep key (pip-only, or optional like cv_bridge)
must at least be named in a package.xml comment saying where they come from.
"""
import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = sorted(p.parent.name for p in (REPO / 'src').glob('*/package.xml'))
# Owned by other people; the issue-13 report lists what it needs.
PENDING = set()
WITH_PENDING = [pytest.param(p, marks=pytest.mark.xfail(reason=f'{p}: owned elsewhere, fix pending'))
                if p in PENDING else p for p in PACKAGES]  # an XPASS means: drop it from PENDING

# import name -> rosdep key, where they differ
ROSDEP_KEYS = {
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'psutil': 'python3-psutil', 'serial': 'python3-serial', 'pytest': 'python3-pytest',
    'hypothesis': 'python3-hypothesis', 'matplotlib': 'python3-matplotlib',
}


def imports_of(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names)


def declared(package_xml: Path) -> tuple[dict, str]:
    """({tag: {keys}}, the text of every comment)."""
    root = ET.parse(package_xml, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()
    tags = {}
    for element in root:
        if isinstance(element.tag, str):
            tags.setdefault(element.tag, set()).add((element.text or '').strip())
    comments = ' '.join(e.text for e in root.iter() if e.tag is ET.Comment)
    return tags, comments


def missing(names, keys, comments, own) -> list[str]:
    return sorted(n for n in names - own
                  if ROSDEP_KEYS.get(n, n) not in keys and not re.search(rf'\b{re.escape(n)}\b', comments))


@pytest.mark.parametrize('package', WITH_PENDING)
def test_every_import_is_declared_in_package_xml(package):
    root = REPO / 'src' / package
    tags, comments = declared(root / 'package.xml')
    run_keys = tags.get('exec_depend', set()) | tags.get('depend', set())
    code = [p for p in (root / package).rglob('*.py')] + list((root / 'launch').glob('*.py'))
    tests = list((root / 'test').rglob('*.py'))
    local = {p.stem for p in tests} | {package}  # test helpers import each other
    undeclared = missing(imports_of(code), run_keys, comments, local)
    assert undeclared == [], f'{package}: exec dependencies missing from package.xml'
    test_keys = run_keys | tags.get('test_depend', set())
    undeclared = missing(imports_of(tests), test_keys, comments, local)
    assert undeclared == [], f'{package}: test dependencies missing from package.xml'


def test_the_checker_sees_an_undeclared_import(tmp_path):
    source = tmp_path / 'x.py'
    source.write_text('import os\nimport numpy\nfrom yaml import safe_load\nfrom . import sibling\n')
    assert imports_of([source]) == {'numpy', 'yaml'}
    assert missing({'numpy', 'yaml'}, {'python3-numpy'}, '', set()) == ['yaml']
    assert missing({'numpy', 'yaml'}, {'python3-numpy'}, 'yaml comes from pip', set()) == []


def test_the_license_file_is_the_apache_2_0_every_package_declares():
    text = (REPO / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text  # the full text, not a pointer to it
    for package in PACKAGES:
        tags, _ = declared(REPO / 'src' / package / 'package.xml')
        assert tags['license'] == {'Apache-2.0'}, package
