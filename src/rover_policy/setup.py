from setuptools import find_packages, setup

package_name = 'rover_policy'

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
    description='ACT policy inference node: ONNX Runtime INT8/FP32 or HailoRT backends, '
                'action chunks aligned to a 30 Hz control clock, safety neutral.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'policy_node = rover_policy.policy_node:main',
            'policy_bench = rover_policy.bench:main',
            # inference latency without ROS (the on-device checklist's benchmark)
            'latency_benchmark = rover_policy.latency_benchmark:main',
        ],
    },
)
