from setuptools import find_packages, setup

PACKAGE = 'avatar_node'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # the browser view's page, script and style (avatar_node/web), read next to the module
    package_data={PACKAGE: ['web/*.html', 'web/*.js', 'web/*.css']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml', 'README.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='agechat developers',
    maintainer_email='dev@agechat.example.com',
    description=(
        'Korean TTS adapted to the listener and two OpenCV avatars '
        '(user mirror, lip-synced agent).'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            f'avatar_node = {PACKAGE}.node:main',
            f'web_view = {PACKAGE}.web_view:main',
        ],
    },
)
