{#- Remove the cgroup controller unit and its craned drop-in (crane:cgroup:enable_controllers).
    Controllers already enabled stay enabled until the next boot; bpffs stays mounted. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set unit = crane.cgroup.unit %}

crane-cgroup-clean-controllers-service-dead:
  service.dead:
    - name: {{ unit }}
    - enable: false

crane-cgroup-clean-controllers-unit-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/{{ unit }}.service
    - require:
      - service: crane-cgroup-clean-controllers-service-dead

crane-cgroup-clean-controllers-dropin-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/craned.service.d/{{ unit }}.conf
