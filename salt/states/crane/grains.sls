{#- Publish this minion's roles and CraneSched version as static grains, for targeting:
    salt -G 'crane:roles:compute' ... The version grain waits for the package step: a
    failed install keeps the version that is installed. #}
{%- from tpldir ~ "/map.jinja" import mapdata as crane with context %}

include:
  - .validate
  - .package

crane-grains-roles-grains-present:
  grains.present:
    - name: crane:roles
    - value: {{ crane.roles | json }}
    - force: true
    - require:
      - crane: crane-validate-config

crane-grains-version-grains-present:
  grains.present:
    - name: crane:version
    - value: {{ crane.version | string | json }}
    - force: true
    - require:
      {#- the version only once it is installed #}
      - sls: {{ tpldir }}.package.install
