"""rover_quantize: an ament_python package for colcon, and a plain pip package for a training PC.

colcon (`colcon build`) installs it like every ROS Python package (setup.cfg puts the console
script in lib/rover_quantize for `ros2 run`); `pip install ./src/rover_quantize` puts
`rover-quantize` on PATH and pulls the Python dependencies below. colcon does not install
install_requires: on a ROS machine they come from pip (README.md), as package.xml says.
"""
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
    python_requires='>=3.10',
    # torch: CPU wheels are enough (on amd64 PyPI's default wheel pulls CUDA; see README.md).
    install_requires=[
        'setuptools',
        'rover_common',   # the model-directory contract: pip install ./src/rover_common ./src/rover_quantize
        'numpy',
        'opencv-python-headless',
        'matplotlib',
        'onnx',
        'onnxruntime',
        'onnxscript',
        'rosbags>=0.11,<0.12',  # bags.py reads MCAP chunks with rosbags' chunk index and decompressors
        'safetensors',
        'torch',
        'tqdm',
    ],
    # colcon test runs pytest when the package declares it here (tests_require is ignored by
    # current setuptools); pytest-timeout for the --timeout in colcon.meta.
    extras_require={'test': ['pytest', 'pytest-timeout', 'hypothesis']},
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Offline: LeRobot ACT in PyTorch, ONNX export, INT8 calibrated from rosbags, '
                'validation, benchmark, Hailo preparation.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'rover-quantize = rover_quantize.cli:main',
        ],
    },
)
