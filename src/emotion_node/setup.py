from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'emotion_node'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml', 'README.md']),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.xml')),
        # produced by scripts/setup.d/20-emotion-weights.sh before the build (git-ignored)
        (f'share/{PACKAGE}/models', glob('models/*.safetensors') + glob('models/*.tflite')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='agechat maintainers',
    maintainer_email='maintainers@agechat.example.com',
    description='Facial emotion (FER2013 mini-Xception) of the primary face in camera frames.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'emotion_node = emotion_node.node:main',
            'emotion_train = emotion_node.cli:train_main',
            'emotion_evaluate = emotion_node.cli:evaluate_main',
            'emotion_bench = emotion_node.bench:main',
        ],
    },
)
