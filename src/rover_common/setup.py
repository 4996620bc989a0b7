from setuptools import find_packages, setup

package_name = 'rover_common'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    # colcon test runs pytest only for packages whose test extra names it (else unittest: 0 tests).
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=False,  # fastdds_large_frames.xml is opened by path
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Shared helpers for the rover nodes.',
    license='Apache-2.0',
)
