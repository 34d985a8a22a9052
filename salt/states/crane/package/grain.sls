{#- The crane:version grain, for targeting: set only once the packages are installed, so a
    failed install keeps the version that is installed. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

{%- set installed_by = "binaries" if crane.install.method == "binaries" else "install" %}

include:
  - .{{ installed_by }}

crane-package-grain-version-grains-present:
  grains.present:
    - name: crane:version
    - value: {{ crane.version | string | json }}
    - force: true
    - require:
      - sls: {{ tplroot }}.package.{{ installed_by }}
