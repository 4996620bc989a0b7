from setuptools import find_packages, setup

package_name = 'rover_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    # colcon test runs pytest only for packages whose test extra names it (else unittest: 0 tests).
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Simulated rover: the virtual Arduino (rover_bridge.twin) driving a vehicle model, track camera.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = rover_sim.sim_node:main',
            'expert_driver = rover_sim.expert_driver:main',
        ],
    },
)
