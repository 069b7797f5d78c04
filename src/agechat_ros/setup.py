from setuptools import find_packages, setup

PACKAGE = 'agechat_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='agechat maintainers',
    maintainer_email='maintainers@agechat.example.com',
    description='The node template, labels, message conversions, parameters and diagnostics '
    'shared by every agechat node.',
    license='Apache-2.0',
    tests_require=['pytest'],
)
