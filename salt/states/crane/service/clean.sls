{#- Stop and disable this minion's CraneSched daemons; remove the formula's drop-ins. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{#- compute and login daemons first, cranectld last (reverse of the start order) #}
{%- for unit in crane.units | list | reverse %}

crane-service-clean-{{ unit }}-service-dead:
  service.dead:
    - name: {{ unit }}
    - enable: false

crane-service-clean-{{ unit }}-dropin-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/{{ unit }}.service.d/crane-formula.conf
    - require:
      - service: crane-service-clean-{{ unit }}-service-dead
{%- endfor %}
