from setuptools import find_packages, setup

package_name = 'rover_dataset'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'README.md']),
    ],
    # What `pip install ./src/rover_common ./src/rover_dataset` needs on a training machine (colcon does
    # not install these); rover_common for the image decoder shared with rover_quantize.
    install_requires=['setuptools', 'rover_common', 'numpy', 'opencv-python-headless', 'pyarrow', 'av', 'rosbags',
                      'tqdm'],
    extras_require={'test': ['pytest', 'pytest-timeout']},
    python_requires='>=3.10',
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Offline: recorded rosbag2 drives to a LeRobotDataset v3.0 for training ACT with LeRobot.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'rover-dataset = rover_dataset.cli:main',
        ],
    },
)
