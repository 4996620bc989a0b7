from glob import glob

from setuptools import find_packages, setup

package_name = 'rover_bridge'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'PROTOCOL.md', 'protocol_vectors.json']),
        # The firmware ships with the package so it can be flashed and host-tested from an install.
        ('share/' + package_name + '/firmware/rover_firmware', glob('firmware/rover_firmware/*')),
        ('share/' + package_name + '/firmware/host_test', glob('firmware/host_test/*.cpp')),
        ('share/' + package_name + '/firmware/host_test/stubs', glob('firmware/host_test/stubs/*.h')),
    ],
    install_requires=['setuptools', 'pyserial'],
    # colcon test runs pytest only for packages whose test extra names it (else unittest: 0 tests).
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Arduino serial bridge for the rover: protocol, firmware, ROS 2 node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bridge_node = rover_bridge.bridge_node:main',
            'virtual_arduino = rover_bridge.twin.cli:main',
        ],
    },
)
