from setuptools import find_packages, setup

package_name = 'rover_arbiter'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=True,
    maintainer='rover team',
    maintainer_email='rover@example.com',
    description='Command arbiter and driving modes: human and policy commands -> rover/cmd.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'arbiter_node = rover_arbiter.arbiter_node:main',
        ],
    },
)
