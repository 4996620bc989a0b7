from setuptools import find_packages, setup

package_name = 'rover_camera'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'README.md']),
    ],
    install_requires=['setuptools'],
    # colcon test runs pytest only for packages whose test extra names it (else unittest: 0 tests).
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Camera publisher: V4L2 device, GStreamer pipeline, video file, image folder '
                'or synthetic test pattern to camera/image_raw, compressed and camera_info.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'camera_node = rover_camera.camera_node:main',
        ],
    },
)
