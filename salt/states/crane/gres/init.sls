{#- Step 8: the gres gate. craned exits at start when a device file its gres entries name is
    missing; check this node's devices against the new config before config.yaml is written
    or craned restarted. With crane:gres:nvidia_device_files, a oneshot unit creates the
    /dev/nvidiaN files (the driver makes them lazily) at boot, before craned and the gate. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set nvidia = "compute" in crane.roles and crane.gres.nvidia_device_files and crane.nvidia_minors %}

include:
  - {{ tplroot }}.validate
{%- if nvidia %}

crane-gres-nvidia-unit-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/{{ crane.gres.nvidia_unit }}.service
    - source: {{ files_switch(crane.gres.nvidia_unit ~ ".service.jinja") }}
    - template: jinja
    - context:
        modprobe: {{ crane.gres.nvidia_modprobe | json }}
        minors: {{ crane.nvidia_minors | json }}
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate

crane-gres-nvidia-dropin-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/craned.service.d/{{ crane.gres.nvidia_unit }}.conf
    - contents: |
        # Managed by Salt (crane formula): crane:gres:nvidia_device_files.
        [Unit]
        Wants={{ crane.gres.nvidia_unit }}.service
        After={{ crane.gres.nvidia_unit }}.service
    - makedirs: true
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate

crane-gres-nvidia-service-running:
  service.running:
    - name: {{ crane.gres.nvidia_unit }}
    - enable: true
    - require:
      - file: crane-gres-nvidia-unit-file-managed
    - watch:
      - file: crane-gres-nvidia-unit-file-managed
{%- endif %}
{%- if "compute" in crane.roles %}

crane-gres-valid:
  crane.gres_valid:
    - name: {{ crane.host }}
    - dev_root: {{ crane.gres.dev_root }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   if nvidia %}
      - service: crane-gres-nvidia-service-running
{%-   endif %}
{%- endif %}
