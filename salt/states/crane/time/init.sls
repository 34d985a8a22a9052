{#- Every node: time sync with chrony, as CraneSched's deployment guides set it up (job times,
    node timeouts and TLS certificates assume agreeing clocks). crane:time:chrony false leaves
    time to whatever the site uses. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.validate
{%- if crane.roles and crane.time.chrony %}

crane-time-chrony-pkg-installed:
  pkg.installed:
    - name: {{ crane.time.chrony_package }}
    - require:
      - crane: crane-validate-config

crane-time-chrony-service-running:
  service.running:
    - name: {{ crane.time.chrony_service }}
    - enable: true
    - require:
      - pkg: crane-time-chrony-pkg-installed
{%- endif %}
