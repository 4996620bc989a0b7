from glob import glob

from setuptools import find_packages, setup

package_name = 'rover'

# launch/ and config/ are symlinks to the repository's top-level folders, so
# `ros2 launch rover bringup.launch.py` finds them under share/rover/.
setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['demo_policy.safetensors']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.perspective')),
    ],
    install_requires=['setuptools'],
    # colcon test runs pytest only for packages whose test extra names it (else unittest: 0 tests).
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=False,  # demo_policy.safetensors is opened by path
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Bringup for the rover.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'demo = rover.demo:main',
            'demo_policy = rover.demo_policy:main',
        ],
    },
)
