from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'dialogue_node'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml', 'README.md']),
        (f'share/{PACKAGE}/data', glob('data/*.json')),
        # the embedded model (KoGPT2-format checkpoint), produced by
        # `python -m dialogue_node.core.train`
        (f'share/{PACKAGE}/models/embedded', glob('models/embedded/*')),
        # the retrieval index (ChatbotData answers in three registers), produced by
        # `python -m dialogue_node.core.retrieval_data --out models/retrieval`
        (f'share/{PACKAGE}/models/retrieval', glob('models/retrieval/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='agechat maintainers',
    maintainer_email='maintainers@agechat.example.com',
    description=(
        'Age- and emotion-conditioned Korean replies (retrieved real answers; GPT-2) for agechat.'
    ),
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'dialogue_node = dialogue_node.node:main',
            'chat = dialogue_node.chat:main',
            'dialogue_train = dialogue_node.core.train:main',
            'dialogue_evaluate = dialogue_node.core.evaluate:main',
            'dialogue_bench = dialogue_node.bench:main',
        ],
    },
)
