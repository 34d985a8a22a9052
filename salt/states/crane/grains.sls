{#- Publish this minion's roles as a static grain, for targeting: salt -G 'crane:roles:compute' ...
    The version grain belongs to the package step (package/grain.sls): it is set only once the
    packages are installed, so a failed install keeps the version that is installed. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tpldir ~ "/map.jinja" import mapdata as crane with context %}

include:
  - .validate

crane-grains-roles-grains-present:
  grains.present:
    - name: crane:roles
    - value: {{ crane.roles | json }}
    - force: true
    - require:
      - sls: {{ tplroot }}.validate
