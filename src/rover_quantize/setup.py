from setuptools import find_packages, setup

package_name = 'rover_quantize'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'README.md', 'MODEL_DIR.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Offline: LeRobot ACT in PyTorch, ONNX export, INT8 calibrated from rosbags, '
                'validation, benchmark, Hailo preparation.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'rover-quantize = rover_quantize.cli:main',
        ],
    },
)
