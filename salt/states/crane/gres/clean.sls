{#- Remove the NVIDIA device-file unit and its craned drop-in (crane:gres:nvidia_device_files). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set unit = crane.gres.nvidia_unit %}

crane-gres-clean-nvidia-service-dead:
  service.dead:
    - name: {{ unit }}
    - enable: false

crane-gres-clean-nvidia-unit-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/{{ unit }}.service
    - require:
      - service: crane-gres-clean-nvidia-service-dead

crane-gres-clean-nvidia-dropin-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/craned.service.d/{{ unit }}.conf
