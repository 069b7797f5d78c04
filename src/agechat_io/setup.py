from setuptools import find_packages, setup

PACKAGE = 'agechat_io'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml', 'README.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='agechat developers',
    maintainer_email='dev@agechat.example.com',
    description='Laptop device nodes: microphone, camera and speaker for the agechat graph.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            f'microphone_node = {PACKAGE}.microphone_node:main',
            f'camera_node = {PACKAGE}.camera_node:main',
            f'speaker_node = {PACKAGE}.speaker_node:main',
        ],
    },
)
