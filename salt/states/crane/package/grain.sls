{#- The crane:version grain, for targeting: set only once the packages are installed, so a
    failed install keeps the version that is installed. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - .install

crane-package-grain-version-grains-present:
  grains.present:
    - name: crane:version
    - value: {{ crane.version | string | json }}
    - force: true
    - require:
      - sls: {{ tplroot }}.package.install
