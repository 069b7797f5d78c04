from glob import glob

from setuptools import find_packages, setup

package_name = 'age_node'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'README.md']),
        ('share/' + package_name + '/models', glob('models/*.safetensors')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='agechat',
    maintainer_email='agechat@example.com',
    description='Microphone audio to Korean utterances and the speaker age group.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'age_node = age_node.node:main',
        ],
    },
)
